"""Names that are never data: hidden files and what operating systems and file servers add to a share."""

from __future__ import annotations

from pathlib import Path

SYSTEM_NAMES = frozenset(
    {
        "@eadir",  # Synology's index and thumbnails, one in every folder
        "#recycle",  # Synology's recycle bin
        "#snapshot",
        "@recycle",  # QNAP's
        "@recently-snapshot",
        "@sharebin",
        "$recycle.bin",  # Windows
        "system volume information",
        "thumbs.db",
        "desktop.ini",
        "__macosx",  # macOS resource forks in a zip archive
        "~snapshot",  # NetApp
        "lost+found",  # a file system's root
    }
)
"""Files and folders that operating systems and file servers add to a share (compared without case)."""


def ignored_name(name: str) -> bool:
    """Whether a file or folder called ``name`` is never read as data: hidden ones (``.DS_Store``, macOS
    ``._name`` AppleDouble files, ``.git``) and :data:`SYSTEM_NAMES` (``@eaDir``, ``#recycle``,
    ``$RECYCLE.BIN``...)."""
    return name.startswith(".") or name.casefold() in SYSTEM_NAMES


def hidden(p: Path) -> bool:
    """:func:`ignored_name` of ``p``'s name: never a track, a stem or a stem class."""
    return ignored_name(p.name)
