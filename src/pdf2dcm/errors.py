"""The exception hierarchy of pdf2dcm.

Every failure a caller can act on is a :class:`Pdf2DcmError`; its ``str()`` is one line that
names the thing at fault and, where there is one, the fix. The command line maps each class
to an exit code in one table (``pdf2dcm.cli.EXIT_CODES``), so new classes must be added there.
This module imports nothing from the package so that every other module can import it.
"""

from __future__ import annotations


class Pdf2DcmError(Exception):
    """Base of every error pdf2dcm raises on purpose."""


class InputError(Pdf2DcmError):
    """The user's input is unusable: a missing file, a file that is not a PDF, a bad tag."""


class NotAPdfError(InputError):
    """The input has no ``%PDF-`` header, so wrapping it as a PDF would mislabel it."""


class TagError(InputError):
    """A user tag names an unknown attribute or holds a value its VR does not allow."""


class NotEncapsulatedPdfError(InputError):
    """The DICOM input is readable but does not hold an encapsulated PDF."""


class OutputExistsError(InputError):
    """The output path exists and the caller did not allow overwriting it."""


class FileSystemError(InputError):
    """The operating system refused a file operation (permissions, disk full, read-only, ...).

    The message names the path and the cause; ``errno`` is the OS error number when known.
    """

    def __init__(self, message: str, *, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class StrictModeError(InputError):
    """A warning, turned into an error because the caller asked for strict mode (CI)."""


class IdentityConflictError(InputError):
    """A given value contradicts the patient, study or series the document is attached to.

    Storing it would split one study over two patients (or one series over two studies), so
    nothing is written or sent.
    """


class NotAttemptedError(Pdf2DcmError):
    """A batch item skipped because the batch stopped at an earlier error."""


class ConfigurationError(Pdf2DcmError):
    """Settings are contradictory or incomplete (for example a token and a password together)."""


class ServerError(Pdf2DcmError):
    """Something went wrong talking to the server."""


class ServerUnreachableError(ServerError):
    """No HTTP answer: refused, DNS, TLS or timeout, after the retries."""


class UnexpectedReplyError(ServerError):
    """The server answered, but not in the shape an Orthanc server answers (or too much)."""


class RedirectError(ServerError):
    """The server redirected a request that pdf2dcm will not follow (a body, another host)."""


class ConflictError(ServerError):
    """The server already holds something that contradicts what would be stored.

    A study of the same StudyInstanceUID under another patient, or a different document under
    the same SOPInstanceUID. Nothing was stored or changed.
    """


class HTTPStatusError(ServerError):
    """The server answered with an error status.

    Orthanc describes errors in a JSON body (``Message``, ``Details``, ``OrthancStatus``) only
    when configured to; these attributes hold what it said, or ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        url: str,
        orthanc_message: str | None = None,
        orthanc_details: str | None = None,
        orthanc_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.url = url
        self.orthanc_message = orthanc_message
        self.orthanc_details = orthanc_details
        self.orthanc_status = orthanc_status


class ServerRefusedError(HTTPStatusError):
    """A 4xx answer: the request itself was wrong (unknown ID, bad tags, ...)."""


class AuthenticationError(ServerRefusedError):
    """A 401 or 403 answer. The message never repeats the credentials."""


class NotFoundError(ServerRefusedError):
    """A 404 answer for a resource the caller named."""


class ServerFailedError(HTTPStatusError):
    """A 5xx answer that persisted through the retries."""


class JobError(Pdf2DcmError):
    """An Orthanc job did not end in success.

    ``status`` is the job's last reading (a ``pdf2dcm.jobs.JobStatus``) when one was seen.
    """

    def __init__(self, message: str, *, status: object = None) -> None:
        super().__init__(message)
        self.status = status


class JobFailedError(JobError):
    """The job ended in ``Failure`` (a cancelled job too)."""


class JobTimeoutError(JobError):
    """Waiting gave up; the job itself goes on in the server."""


class JobStateError(InputError):
    """The job exists but its state does not allow the action (resume a Pending job)."""


class JobNotFoundError(JobError):
    """The job never existed or was evicted from the server's job history."""


class AssociationRejectedError(ServerUnreachableError):
    """A DICOM node rejected the association (an unknown AE title, congestion, ...).

    ``reason`` is the rejection's reason as the standard words it.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class DicomStatusError(ServerError):
    """A DICOM node answered a request with a failure status.

    ``status`` is the DIMSE status code (``0xA700``, ...) and ``meaning`` its meaning.
    """

    def __init__(self, message: str, *, status: int, meaning: str) -> None:
        super().__init__(message)
        self.status = status
        self.meaning = meaning


class DicomRefusedError(DicomStatusError):
    """A failure status that refuses the request itself (A9xx, Cxxx, 01xx, ...)."""


class DicomOutOfResourcesError(DicomStatusError):
    """A7xx (or 0213): the node is out of resources; the same request may pass later."""


class CommitmentError(ServerError):
    """A storage commitment did not confirm every instance."""


class CommitmentFailedError(CommitmentError):
    """The archive reported instances it did not commit to.

    ``result`` is the ``pdf2dcm.dimse.CommitResult`` with the committed and failed ones.
    """

    def __init__(self, message: str, *, result: object = None) -> None:
        super().__init__(message)
        self.result = result


class CommitmentTimeoutError(CommitmentError):
    """No storage commitment report came in time; the archive may still commit later."""
