"""DICOM in and out: reading MR/RTSTRUCT/RTDOSE series into a case manifest (:mod:`.importer` and its helpers
:mod:`.files`, :mod:`.series`, :mod:`.geometry`, :mod:`.contours`, :mod:`.dates`, :mod:`.rtdose`,
:mod:`.rtstruct_read`) and writing the targets as RTSTRUCT and DICOM SEG (:mod:`.export`, :mod:`.rtstruct_write`,
:mod:`.seg_write`, :mod:`.header`).

Layer 5: may import everything below it (io, targets, the output record); only the commands import it.
"""
