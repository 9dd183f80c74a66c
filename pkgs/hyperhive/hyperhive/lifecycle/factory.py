"""The container backend the settings name: the one module that knows every implementation."""

from __future__ import annotations

from hyperhive.lifecycle.backends import Backend
from hyperhive.lifecycle.local import LocalBackend
from hyperhive.lifecycle.nixos import NixosBackend
from hyperhive.lifecycle.nspawn import NspawnBackend
from hyperhive.settings import BackendKind, Settings


def make_backend(settings: Settings) -> Backend:
    """The configured container backend."""
    if settings.backend is BackendKind.LOCAL:
        return LocalBackend(settings)
    if settings.backend is BackendKind.NSPAWN:
        return NspawnBackend(settings)
    return NixosBackend(settings)
