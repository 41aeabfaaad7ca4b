"""Identifiers several modules need, kept free of imports so that commands which never build
a dataset (fetch, jobs) do not pay for importing pydicom."""

ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
PDF_MIME_TYPE = "application/pdf"
DEFAULT_CALLING_AET = "PDF2DCM"
"""The AE title pdf2dcm calls DICOM nodes from unless told otherwise."""
DEFAULT_DIMSE_TIMEOUT = 30.0
"""Seconds a DICOM node may take to answer (association, each message)."""
MAX_SEQUENCE_DEPTH = 64
"""Sequences nested deeper than this are refused, by every reader of DICOM files (real objects
nest a handful of levels; a hostile one would exhaust the stack)."""
