from app.tables import Dataset
from app.uploaded import UploadedFiles

_datasets = UploadedFiles(Dataset)
add, get, list_for, by_sha256, stored_bytes = (
    _datasets.add,
    _datasets.get,
    _datasets.list_for,
    _datasets.by_sha256,
    _datasets.stored_bytes,
)
