"""Where each destination writes, and which destinations share a place (``check``).

A destination's place is its container (:func:`shared.blob_store.container_location`: a SAS URL and
an account URL + container name of the same container are the same place) and its folder
(``BLOB_PATH``). Two destinations must not write into the same folder, nor one into a folder inside
the other's (the container root holds every folder): with the same ETL ids their files would have
the same names, and each one's ``verify`` lists the other's files as foreign. Pure: the settings in,
one line per overlap out.
"""

from __future__ import annotations

from collections.abc import Iterable

from shared.blob_store import container_location
from shared.settings import Settings


def place_of(settings: Settings) -> tuple[str, str]:
    """(container location, folder without surrounding slashes)."""
    container = container_location(sas_url=settings.blob_sas_url, account_url=settings.blob_account_url,
                                   container=settings.blob_container)
    return container, settings.blob_path.strip("/")


def _inside(folder: str, outer: str) -> bool:
    return outer == "" or folder == outer or folder.startswith(outer + "/")


def _shown(folder: str) -> str:
    return folder or "(the container root)"


def overlaps(name: str, destinations: Iterable[tuple[str, Settings]]) -> list[tuple[str, str]]:
    """What is wrong with destination ``name``'s place beside the others of ``destinations``
    ((name, settings) pairs, ``name`` among them): (other, one line) per other destination that
    writes into the same folder, into one inside it, or around it."""
    places = {n: place_of(s) for n, s in destinations}
    container, folder = places[name]
    out = []
    for other, (other_container, other_folder) in sorted(places.items()):
        if other == name or other_container != container:
            continue
        if folder == other_folder:
            relation = f"writes into the same folder {_shown(folder)} as destination {other}"
        elif _inside(folder, other_folder):
            relation = f"writes inside destination {other}'s folder {_shown(other_folder)}"
        elif _inside(other_folder, folder):
            relation = f"holds destination {other}'s folder {_shown(other_folder)}"
        else:
            continue
        out.append((other, f"{relation} (same container): give each destination a folder of its own, beside the "
                   "others' (BLOB_PATH); with the same ids they would write the same file names, and verify "
                   "calls each one's files foreign to the other"))
    return out
