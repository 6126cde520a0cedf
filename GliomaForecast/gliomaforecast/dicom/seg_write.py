"""A DICOM Segmentation (highdicom, BINARY) of named masks on a planning image series, with the terminology codes of
the Slicer segmentation (.seg.nrrd ``SegmentN_Tags``) and its colours."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from .. import __version__
from .header import MANUFACTURER, MODEL_NAME, series_description

SERIES_NUMBER = 902


def terminology_codes(tag: str) -> dict[str, hd.sr.CodedConcept]:
    """The category, type and (when given) anatomic region codes of a Slicer terminology entry
    (``TerminologyEntry:context~CAT^code^meaning~TYPE^code^meaning~modifier~anatomic context~REGION^...~...|``)."""
    body = tag.split(":", 1)[-1].rstrip("|")
    parts = body.split("~")
    out: dict[str, hd.sr.CodedConcept] = {}
    for key, index in (("category", 1), ("type", 2), ("region", 5)):
        if index < len(parts):
            scheme, _, rest = parts[index].partition("^")
            value, _, meaning = rest.partition("^")
            if scheme and value and meaning:
                out[key] = hd.sr.CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)
    if "category" not in out or "type" not in out:
        raise ValueError(f"terminology entry without a category and a type: {tag!r}")
    return out


def segment_description(
    number: int, name: str, tag: str, color: Sequence[float], automatic: bool, text: str | None = None
) -> hd.seg.SegmentDescription:
    """One segment: label ``name``, the codes of Slicer terminology ``tag``, display colour ``color`` (RGB, 0-1);
    ``automatic`` segments name GliomaForecast as their algorithm, the others are MANUAL (the input GTV)."""
    terms = terminology_codes(tag)
    rgb = [int(round(255 * float(c))) for c in color]
    item = hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=name,
        segmented_property_category=terms["category"],
        segmented_property_type=terms["type"],
        algorithm_type="AUTOMATIC" if automatic else "MANUAL",
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name=MANUFACTURER, family=codes.cid7162.ArtificialIntelligence, version=__version__
        )
        if automatic
        else None,
        anatomic_regions=[terms["region"]] if "region" in terms else None,
        display_color=hd.color.CIELabColor.from_rgb(*rgb),
    )
    if text:
        item.SegmentDescription = text[:64]  # (0062,0006), type 3: e.g. the standard plan's convention
    return item


def seg_dataset(
    reference: Sequence[Dataset],
    masks: Mapping[str, np.ndarray],
    *,
    tags: Mapping[str, str],
    colors: Mapping[str, Sequence[float]],
    automatic: Mapping[str, bool],
    description: str,
    segment_texts: Mapping[str, str] | None = None,
) -> hd.seg.Segmentation:
    """The DICOM SEG of ``masks`` (name -> bool array, z-y-x, slice k on ``reference[k]``, the reference series'
    headers in slice order), new UIDs, research-use series description."""
    names = list(masks)
    pixels = np.stack([np.asarray(masks[n], dtype=bool) for n in names], axis=-1)
    texts = segment_texts or {}
    descriptions = [
        segment_description(i, n, tags[n], colors[n], automatic[n], texts.get(n)) for i, n in enumerate(names, 1)
    ]
    return hd.seg.Segmentation(
        source_images=list(reference),
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=generate_uid(),
        series_number=SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=MODEL_NAME,
        software_versions=__version__,
        device_serial_number="none",
        series_description=series_description(description),
        content_label="TARGETS",
        content_description=series_description(description),
        content_qualification=hd.ContentQualificationValues.RESEARCH,
    )
