from app.tables import Model
from app.uploaded import UploadedFiles

_models = UploadedFiles(Model)
add, get, list_for, by_sha256, stored_bytes = (
    _models.add,
    _models.get,
    _models.list_for,
    _models.by_sha256,
    _models.stored_bytes,
)
