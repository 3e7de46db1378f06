"""Reads a partner repository's working tree, for ``validate`` (plan and apply read git revisions)."""

from __future__ import annotations

from pathlib import Path

from reconciler.errors import UsageError
from reconciler.manifests.validation import PARTNERS_DIR, POLICIES_DIR, is_manifest_path


class WorkingTree:
    """The files of a checkout, addressed by repository-relative POSIX path."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise UsageError(f"--repo {root} is not a folder; point it at a partner repository checkout")
        self.root = root.resolve()

    def read(self, path: str) -> bytes | None:
        try:
            return (self.root / path).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def manifest_paths(self) -> list[str]:
        found: list[str] = []
        for top in (PARTNERS_DIR, POLICIES_DIR):
            folder = self.root / top
            if folder.is_dir():
                found.extend(
                    relative
                    for file in folder.rglob("*")
                    if file.is_file() and is_manifest_path(relative := file.relative_to(self.root).as_posix())
                )
        return sorted(found)

    def relative(self, path: Path) -> str | None:
        """``path`` relative to the repository root, or None when it lies outside."""
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return None
