"""Peak resident memory of one training step, in a fresh process (CPU rows of bench_model.py).

    python bench/_memory_child.py '{"impl": "vivit" | "hf-sdpa" | "hf-eager", "config": {...}, "batch": 2}'

Prints one JSON line: {"peak_bytes": ...}, the rise of the resident-set high-water mark (Linux VmHWM, reset through
/proc/self/clear_refs) over one forward + backward + SGD step, after a warm-up step. The parent sets
MALLOC_MMAP_THRESHOLD_ so that freed tensors go back to the OS instead of hiding in malloc's free lists.
"""

from __future__ import annotations

import gc
import json
import sys

import torch


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def build(impl: str, config: dict):
    if impl == "vivit":
        from vivit import VivitConfig, VivitForVideoClassification

        return VivitForVideoClassification(VivitConfig(**config, backend="eager"))
    import transformers

    hf_config = transformers.VivitConfig(**config)
    hf_config._attn_implementation = impl.split("-", 1)[1]
    return transformers.VivitForVideoClassification(hf_config)


def main() -> None:
    args = json.loads(sys.argv[1])
    torch.set_num_threads(args.get("threads", 2))
    config, batch = args["config"], args["batch"]
    model = build(args["impl"], config).train()
    size = config["image_size"]
    pixels = torch.randn(batch, config["num_frames"], 3, size, size)
    labels = torch.randint(0, config["num_labels"], (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def step():
        loss = model(pixel_values=pixels, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # warm-up: one-time allocations (thread pools, kernels' scratch) are not the step's memory
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the high-water mark to the current resident set
    start = _status("VmRSS")
    step()
    print(json.dumps({"peak_bytes": _status("VmHWM") - start}))


if __name__ == "__main__":
    main()
