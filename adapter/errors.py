"""Every error the adapter raises, in one hierarchy.

Each error carries a ``fault_code``: the SOAP layer maps the hierarchy to
SOAP faults in one place (:mod:`adapter.soap.faults`). Business outcomes
(client unknown, nothing owed...) are not errors: they are
:class:`adapter.domain.model.Outcome` values in normal responses.
"""


class AdapterError(Exception):
    """Base of every error the adapter raises on purpose."""

    fault_code = "Server"


class ClientError(AdapterError):
    """The caller sent something the adapter refuses: fix the request, do not retry it."""

    fault_code = "Client"


class RequestTooLarge(ClientError):
    fault_code = "Client.RequestTooLarge"


class RequestTimeout(ClientError):
    """The whole request did not arrive within the configured deadline."""

    fault_code = "Client.RequestTimeout"


class UnsupportedMediaType(ClientError):
    fault_code = "Client.UnsupportedMediaType"


class UnsupportedCharset(ClientError):
    fault_code = "Client.UnsupportedCharset"


class CharsetMismatch(ClientError):
    fault_code = "Client.CharsetMismatch"


class MalformedXml(ClientError):
    fault_code = "Client.MalformedXml"


class MalformedJson(ClientError):
    fault_code = "Client.MalformedJson"


class ForbiddenDtd(ClientError):
    fault_code = "Client.DtdForbidden"


class DocumentTooDeep(ClientError):
    fault_code = "Client.DocumentTooDeep"


class TooManyElements(ClientError):
    fault_code = "Client.TooManyElements"


class TooManyAttributes(ClientError):
    fault_code = "Client.TooManyAttributes"


class NotSoapEnvelope(ClientError):
    fault_code = "Client.NotSoapEnvelope"


class VersionMismatch(AdapterError):
    fault_code = "VersionMismatch"


class MustUnderstand(AdapterError):
    fault_code = "MustUnderstand"


class UnknownOperation(ClientError):
    fault_code = "Client.UnknownOperation"


class SoapActionMismatch(ClientError):
    fault_code = "Client.SoapActionMismatch"


class SchemaViolation(ClientError):
    fault_code = "Client.SchemaViolation"


class OperationConflict(ClientError):
    """A stored operation ID came again with other data: nothing stored. (The Webservice
    answers it as codigoRespuesta 7; PMC's API as HTTP 409.)"""

    fault_code = "Client.OperationConflict"


class AddressNotAllowed(ClientError):
    fault_code = "Client.AddressNotAllowed"


class NotAuthenticated(ClientError):
    fault_code = "Client.NotAuthenticated"

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        # why, for the log only: the caller gets the same message whatever the reason
        self.reason = reason


class NotAuthorized(ClientError):
    fault_code = "Client.NotAuthorized"


class UnknownBiller(ClientError):
    fault_code = "Client.UnknownEmpresa"


class InvalidInvoice(ClientError):
    """An invoice whose terms break a rule the schema cannot express."""

    fault_code = "Client.InvalidInvoice"


class ServerError(AdapterError):
    """The adapter failed: the caller may retry. The message is for the log only; the
    caller gets ``public_message`` and an error ID that finds the message in the log."""

    fault_code = "Server"
    public_message = "internal error"


class InvalidResponse(ServerError):
    """The adapter produced a response its own contract refuses: a bug, never sent."""

    fault_code = "Server.InvalidResponse"
    public_message = "the adapter produced an invalid response; it was logged and not sent"


class InternalError(ServerError):
    fault_code = "Server.InternalError"
    public_message = "internal error"


class StorageUnavailable(ServerError):
    fault_code = "Server.StorageUnavailable"
    public_message = "the adapter's database is unavailable; try again later"


class SchemaOutOfDate(StorageUnavailable):
    """The database answers, at a schema revision this code does not use: ``pmc-adapter
    upgrade-schema`` (or ``serve``, ``worker``) brings it up to date."""


class Conflict(ServerError):
    """A unique or check constraint refused the transaction (someone else wrote the same
    thing at the same moment): the use case retries it from the start, or says what the
    other one did. One that escapes is a bug: the caller gets an internal error."""

    fault_code = "Server.InternalError"


class ConfigurationError(AdapterError):
    """The adapter cannot start with the configuration it was given."""


class DeadlineExceeded(AdapterError):
    """A call to another system (the ERP, PMC's API) had no complete answer within its
    deadline; the client that made it says which system, as ErpUnavailable or
    PmcUnavailable."""

    def __init__(self, seconds: float):
        super().__init__(f"no complete answer within {seconds:g} s")
        self.seconds = seconds


class ErpError(AdapterError):
    """Talking to the biller's ERP failed."""


class ErpUnavailable(ErpError):
    """The ERP did not answer in time, could not be reached, or faulted: try again later."""


class ErpRejected(ErpError):
    """The ERP answered, and refused: retrying will not help."""


class PmcError(AdapterError):
    """Talking to PMC's collection API failed."""


class PmcUnavailable(PmcError):
    """PMC's API did not answer in time, could not be reached, or failed: try again later."""


class PmcRejected(PmcError):
    """PMC's API answered, and refused: retrying will not help."""
