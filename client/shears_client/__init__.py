"""shears-client: the `shears remote` commands and the Python SDK of a Shears server.

    import shears_client as shears

    with shears.Client("https://shears.example.com", key) as client:
        job = client.submit("model.keras", "builtin:digits", target={"sparsity": 0.5}, devices=["host"])
        job.wait(progress=True)
        job.download("out/")
        print(job.report.size.tflite_bytes, job.report.device("host").ms)

The package is `shears_client`, not `shears`: the server's package is `shears`, and both can be
installed together (the server depends on this one and runs the same code for `shears remote`;
there, `shears.Client` is this `Client` too).
"""

from shears_client.errors import (
    AuthenticationError,
    ClientTooOld,
    Conflict,
    InvalidRequest,
    JobCancelled,
    JobFailed,
    NotFound,
    PayloadTooLarge,
    QuotaExceeded,
    Refused,
    ServerUnavailable,
    ShearsError,
    UnsupportedFormat,
    WaitTimeout,
)
from shears_client.http import VERSION
from shears_client.report import DeviceFigures, JobRecord, Report, SweepPoint, SweepReport, Usage
from shears_client.sdk import Client, Job, Upload

__version__ = VERSION
__all__ = [
    "AuthenticationError",
    "Client",
    "ClientTooOld",
    "Conflict",
    "DeviceFigures",
    "InvalidRequest",
    "Job",
    "JobCancelled",
    "JobFailed",
    "JobRecord",
    "NotFound",
    "PayloadTooLarge",
    "QuotaExceeded",
    "Refused",
    "Report",
    "ServerUnavailable",
    "ShearsError",
    "SweepPoint",
    "SweepReport",
    "UnsupportedFormat",
    "Upload",
    "Usage",
    "WaitTimeout",
]
