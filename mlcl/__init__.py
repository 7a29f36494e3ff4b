"""mlcl: contrastive learning for multi-label classification."""

try:  # the installed distribution's version (one source of truth: pyproject.toml)
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("mlcl")
except PackageNotFoundError:  # pragma: no cover - a bare source tree on sys.path
    __version__ = "0.1.0"
