"""The private artifacts bucket: uploads, checksum verification and V4 signed URLs.

Locally the storage emulator (the library reads STORAGE_EMULATOR_HOST itself and
uses anonymous credentials, so `project=` is passed) and URLs are signed with the
throw-away service-account key file from set-up. That key is handed ONLY to
`generate_signed_url`: a Client built with it would try Google's token endpoint.
In Google Cloud the function signs through IAM (signBlob) as its own service
account, with the access token of its default credentials: no key file exists.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from commerce.deadlines import call_timeout
from commerce.errors import ConfigurationError, UpstreamError
from commerce.settings import Settings

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.cloud import storage  # type: ignore[attr-defined]

Progress = Callable[[int], None]
_UPLOAD_CHUNK = 8 * 1024 * 1024
# One HTTP request to Cloud Storage (a metadata read, an 8 MiB upload chunk) and all the
# library's retries of one call; the library's own defaults are 60 s and 120 s. Within a
# request budget (commerce.deadlines) both get at most what is left of it.
STORAGE_REQUEST_SECONDS = 30.0
STORAGE_RETRY_SECONDS = 90.0


def _bounded() -> dict[str, Any]:
    """`timeout=` and `retry=` for one call. Every call retried here is idempotent: reads,
    and uploads guarded by `if_generation_match=0`."""
    from google.cloud.storage.retry import DEFAULT_RETRY

    return {
        "timeout": call_timeout(STORAGE_REQUEST_SECONDS),
        "retry": DEFAULT_RETRY.with_timeout(call_timeout(STORAGE_RETRY_SECONDS)),
    }


class _ProgressReader:
    """A read-only file wrapper that reports bytes read (for the CLI's progress bar)."""

    def __init__(self, handle: IO[bytes], progress: Progress) -> None:
        self._handle = handle
        self._progress = progress

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        if data:
            self._progress(len(data))
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._handle.seek(offset, whence)

    def tell(self) -> int:
        return self._handle.tell()


def crc32c_b64(path: Path) -> str:
    """The CRC32C that Cloud Storage reports for an object (base64 of big-endian)."""
    import google_crc32c

    checksum = google_crc32c.Checksum()  # type: ignore[no-untyped-call]
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            checksum.update(chunk)  # type: ignore[no-untyped-call]
    return base64.b64encode(checksum.digest()).decode()  # type: ignore[no-untyped-call]


class ArtifactStore:
    def __init__(self, settings: Settings, client: storage.Client | None = None) -> None:
        self.settings = settings
        self._client = client
        self._lock = threading.Lock()
        self._signing_credentials: Credentials | None = None

    @property
    def client(self) -> storage.Client:
        with self._lock:
            if self._client is None:
                from google.cloud import storage  # type: ignore[attr-defined]

                self._client = storage.Client(project=self.settings.gcp_project)
            return self._client

    @property
    def bucket(self) -> storage.Bucket:
        return self.client.bucket(self.settings.artifacts_bucket)

    # -- publishing -----------------------------------------------------------------
    def exists(self, object_name: str) -> bool:
        return bool(self.bucket.blob(object_name).exists(**_bounded()))

    def upload_file(
        self,
        path: Path,
        object_name: str,
        *,
        sha256: str,
        progress: Progress | None = None,
        content_type: str = "application/octet-stream",
    ) -> None:
        """Upload and verify: the stored object's CRC32C must equal the local file's."""
        blob = self.bucket.blob(object_name)
        size = path.stat().st_size
        if size > _UPLOAD_CHUNK:
            blob.chunk_size = _UPLOAD_CHUNK  # resumable upload: progress per chunk
        blob.metadata = {"sha256": sha256}
        with path.open("rb") as handle:
            reader: Any = _ProgressReader(handle, progress) if progress else handle
            blob.upload_from_file(
                reader,
                size=size,
                content_type=content_type,
                if_generation_match=0,
                **_bounded(),
            )
        self.verify_stored(object_name, crc32c_b64(path), size)

    def upload_bytes(self, object_name: str, data: bytes, content_type: str) -> None:
        blob = self.bucket.blob(object_name)
        blob.upload_from_string(
            data, content_type=content_type, if_generation_match=0, **_bounded()
        )

    def verify_stored(self, object_name: str, expected_crc32c: str, expected_size: int) -> None:
        blob = self.bucket.get_blob(object_name, **_bounded())
        if blob is None:
            raise ChecksumMismatch(f"{object_name} is missing after upload")
        if blob.size != expected_size or blob.crc32c != expected_crc32c:
            raise ChecksumMismatch(
                f"{object_name}: stored size/CRC32C {blob.size}/{blob.crc32c} differ from "
                f"the local file's {expected_size}/{expected_crc32c}"
            )

    def download_bytes(self, object_name: str) -> bytes:
        data: bytes = self.bucket.blob(object_name).download_as_bytes(**_bounded())
        return data

    # -- signed URLs ----------------------------------------------------------------
    def warm_up_signing(self) -> None:
        """Create the client and load the signing credentials in a background thread.

        A process's first signature otherwise pays for them in line: the storage
        client, and in the cloud the function's own credentials and their first token
        from the metadata server (locally the key file, see `local_signing_credentials`).
        The signing path takes the same lock, so it waits for this instead of doing
        the work twice; a failure here is left for the signing path to report.
        """

        def warm() -> None:
            try:
                if self.settings.url_signing_key_file:
                    self._key_file_credentials()
                else:
                    self._default_credentials()
                self.client  # noqa: B018  # creates the client
            except Exception:  # reported where the URL is signed
                return

        threading.Thread(target=warm, name="signing-warm-up", daemon=True).start()

    def signed_url(self, object_name: str, *, download_name: str) -> str:
        """A V4 GET URL valid for `signed_url_ttl_seconds`, saving as `download_name`."""
        blob = self.bucket.blob(object_name)
        common: dict[str, Any] = {
            "version": "v4",
            "method": "GET",
            "expiration": timedelta(seconds=self.settings.signed_url_ttl_seconds),
            "response_disposition": f'attachment; filename="{download_name}"',
        }
        if self.settings.url_signing_key_file:
            url: str = blob.generate_signed_url(credentials=self._key_file_credentials(), **common)
            return url
        credentials = self._default_credentials()
        email = getattr(credentials, "service_account_email", None)
        if not email:
            raise ConfigurationError("the function's credentials name no service account")
        url = blob.generate_signed_url(
            service_account_email=email, access_token=credentials.token, **common
        )
        return url

    def _key_file_credentials(self) -> Credentials:
        with self._lock:
            if self._signing_credentials is None:
                self._signing_credentials = local_signing_credentials(
                    Path(self.settings.url_signing_key_file)
                )
            return self._signing_credentials

    def _default_credentials(self) -> Credentials:
        """The function's own credentials, refreshed when their token is near expiry."""
        import google.auth
        from google.auth.transport.requests import Request

        with self._lock:
            if self._signing_credentials is None:
                credentials, _ = google.auth.default(
                    scopes=["https://www.googleapis.com/auth/cloud-platform"]
                )
                self._signing_credentials = credentials
            credentials = self._signing_credentials
            if not credentials.valid:
                credentials.refresh(Request())  # type: ignore[no-untyped-call]
            return credentials


def local_signing_credentials(key_file: Path) -> Credentials:
    """The local stack's throw-away service-account key as signing credentials.

    The same credentials `service_account.Credentials.from_service_account_file` builds,
    except that the private key is loaded without OpenSSL's RSA consistency check: about
    30 ms of CPU at every cold start of `download` on the local stack, which guards
    against malformed keys from elsewhere. This key is generated by the local stack's
    set-up, on this machine, and only ever signs URLs for the storage emulator; settings
    refuse a key file outside local, and the cloud signs through IAM and loads no key.
    """
    import json

    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from google.auth import crypt
    from google.oauth2 import service_account

    info = json.loads(key_file.read_text())
    key = load_pem_private_key(
        info["private_key"].encode(), password=None, unsafe_skip_rsa_key_validation=True
    )
    signer = crypt.RSASigner(key, info.get("private_key_id"))  # type: ignore[no-untyped-call]
    credentials: Credentials = service_account.Credentials(  # type: ignore[no-untyped-call]
        signer, info["client_email"], info["token_uri"], project_id=info.get("project_id")
    )
    return credentials


class ChecksumMismatch(UpstreamError):
    code = "checksum_mismatch"
    default_detail = "The stored object does not match the local file."
