"""WS-Discovery 2005/04 messages through wsdiscovery: a Probe out, ProbeMatches in, read leniently.

wsdiscovery drops an answer whose action is not exactly ``.../ProbeMatches`` (ipycam sends
``.../ProbeMatch``) and splits scopes on spaces even when a device forgot to escape one
(``onvif://www.onvif.org/name/Virtual Camera``); both are repaired here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any
from xml.dom import minidom
from xml.parsers.expat import ExpatError

# wsdiscovery has no type information.
_actions: Any = importlib.import_module("wsdiscovery.actions")
_message: Any = importlib.import_module("wsdiscovery.message")
_namespaces: Any = importlib.import_module("wsdiscovery.namespaces")
_qname: Any = importlib.import_module("wsdiscovery.qname")

NVT_TYPE: Any = _qname.QName("http://www.onvif.org/ver10/network/wsdl", "NetworkVideoTransmitter", "dn")
_PROBE_MATCH_ACTION = _namespaces.NS_ACTION_PROBE_MATCH  # .../discovery/ProbeMatches


@dataclass(frozen=True)
class ProbeMatch:
    endpoint: str
    types: list[str]
    scopes: list[str]
    xaddrs: list[str]


def build_probe(types: Any) -> tuple[str, bytes]:
    """``(message id, datagram)`` of a Probe for ``types`` (wsdiscovery QNames)."""
    envelope = _actions.constructProbe(list(types), [])
    return str(envelope.getMessageId()), str(_actions.createProbeMessage(envelope)).encode()


def parse_probe_matches(data: bytes, message_id: str) -> list[ProbeMatch]:
    """The ProbeMatches in ``data`` that answer ``message_id``; nothing for anything else."""
    envelope = _message.parseSOAPMessage(data, "")
    if envelope is None:
        envelope = _lenient_probe_match(data)
    if envelope is None or envelope.getAction() != _PROBE_MATCH_ACTION:
        return []
    relates_to = envelope.getRelatesTo()
    if relates_to and relates_to != message_id:
        return []  # an answer to somebody else's Probe
    return [
        ProbeMatch(
            endpoint=str(match.getEPR()),
            types=[str(t.getLocalname()) for t in match.getTypes() or []],
            scopes=_rejoin_scopes([str(s.getValue()) for s in match.getScopes() or []]),
            xaddrs=[str(x) for x in match.getXAddrs() or []],
        )
        for match in envelope.getProbeResolveMatches()
    ]


def _lenient_probe_match(data: bytes) -> Any:
    try:
        dom = minidom.parseString(data)
    except (ExpatError, ValueError):
        return None
    actions = dom.getElementsByTagNameNS(_namespaces.NS_ADDRESSING, "Action")
    text = actions[0].firstChild if actions else None
    action = text.data.strip() if isinstance(text, minidom.Text) else ""
    if not action.endswith("/ProbeMatch"):
        return None
    try:
        return _actions.parseProbeMatchMessage(dom)
    except (IndexError, AttributeError):
        return None  # a required element is missing: not an answer we can use


def _rejoin_scopes(parts: list[str]) -> list[str]:
    """Glue back scope values that an unescaped space split apart: every scope is a URI."""
    scopes: list[str] = []
    for part in parts:
        if scopes and "://" not in part and ":" not in part.split("/")[0]:
            scopes[-1] = f"{scopes[-1]} {part}"
        else:
            scopes.append(part)
    return scopes
