"""Safe XML parsing: entity expansion and external entities are refused, so a
billion-laughs body fails its source at once, in little memory."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from alerts.sources.base import SourceError


def parse_xml(body: bytes, *, what: str) -> ET.Element:
    try:
        return fromstring(body, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise SourceError(f"{what}: refused unsafe XML ({type(exc).__name__})") from None
    except ET.ParseError as exc:
        raise SourceError(f"{what}: malformed XML ({exc})") from None


def element_text(element: ET.Element | None) -> str:
    """All text inside `element`, inline markup (<i>, <sup> ...) flattened, whitespace
    collapsed."""
    if element is None:
        return ""
    return " ".join("".join(element.itertext()).split())
