"""The `vivit` command: one sub-command per job, each implemented in its own module."""

from __future__ import annotations

import importlib
import sys

# sub-command -> (module with a `main(argv) -> int`, one-line help)
COMMANDS = {
    "train": ("vivit.train", "train or fine-tune a model (default: the built-in synthetic task)"),
    "predict": ("vivit.predict", "classify a video file with a saved model"),
    "eval": ("vivit.evaluate", "top-1/top-5 accuracy of a saved model over a dataset"),
    "convert": ("vivit.convert", "convert a scenic (Flax) ViViT checkpoint to a Hugging Face directory"),
    "explain": ("vivit.viz.explain", "top labels and attention over the frames of a video, drawn as a picture"),
    "plot": ("vivit.viz.curves", "draw the training curves of one or more runs"),
}


def _usage() -> str:
    lines = ["usage: vivit COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<9} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `vivit COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"vivit: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
