"""The optional packages (``pip install "unlearn_bench[wandb]"``), checked before any work starts,
so a logger whose package is missing fails in the config check, not after the fine-tune."""

from __future__ import annotations

from importlib.util import find_spec

from unlearn_bench.errors import ConfigError

# A logger's class -> the packages any one of which it runs with, and the extra that installs one.
LOGGER_PACKAGES = {
    "WandbLogger": (("wandb",), "wandb"),
    "TensorBoardLogger": (("tensorboard", "tensorboardX"), "tensorboard"),
}


def require(packages: tuple[str, ...], extra: str, needed_by: str) -> None:
    """Raise a :class:`ConfigError` naming the install command unless one of ``packages`` imports."""
    if not any(find_spec(p) for p in packages):
        raise ConfigError(
            f"{needed_by} needs the {' or '.join(packages)} package, which is not installed: "
            f'pip install "unlearn_bench[{extra}]" (or pip install {packages[-1]})'
        )


def check_logger(logger_cfg) -> None:
    """The configured logger's package is installed (``logger=wandb`` needs ``wandb``)."""
    target = str((logger_cfg or {}).get("_target_", ""))
    for name, (packages, extra) in LOGGER_PACKAGES.items():
        if target.endswith(f".{name}"):
            require(packages, extra, f"logger={extra}")
