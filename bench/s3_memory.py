"""Memory of the S3 store: a 256 MiB file written through the upload writer (spooled, then a
multipart upload) and read back through the API's download chunks, against moto's S3 server run as
a separate process. Prints this process's peak RSS before and after each step.

Target: growth well under the file size (the transfer holds at most S3_CONCURRENCY parts).

    .venv/bin/python bench/s3_memory.py
"""

import hashlib
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import boto3
import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from app.jobs.endpoints import _chunks  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.storage import get_store  # noqa: E402
from tests.services import free_port  # noqa: E402

MIB = 1024 * 1024
SIZE = 256 * MIB


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = Path(sys.executable).parent / "moto_server"
    moto = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(100):
            try:
                httpx.get(url)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        boto3.client("s3", endpoint_url=url, region_name="us-east-1").create_bucket(Bucket="shears-bench")
        store = get_store(Settings(storage_url="s3://shears-bench/p", s3_endpoint_url=url, s3_region="us-east-1"))
        before = peak_mib()
        writer, block = store.writer(), os.urandom(MIB)
        for _ in range(SIZE // MIB):
            writer.write(block)
        stored = writer.commit("t/big.bin")
        after_upload = peak_mib()
        digest, read = hashlib.sha256(), 0
        for chunk in _chunks(store, stored.key):
            digest.update(chunk)
            read += len(chunk)
        after_download = peak_mib()
        assert read == SIZE
        assert digest.hexdigest() == stored.sha256
        print(
            f"{SIZE // MIB} MiB file; peak RSS {before:.0f} MiB before, {after_upload:.0f} after the upload, "
            f"{after_download:.0f} after the streamed download"
        )
    finally:
        moto.kill()
        moto.wait()


if __name__ == "__main__":
    main()
