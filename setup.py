from setuptools import find_packages, setup

setup(
    name="vivit",
    version="0.1.0",
    description="Triton-accelerated ViViT (Video Vision Transformer): all four variants, Hugging Face compatible",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["vivit", "vivit.*", "vivit_kernels", "vivit_kernels.*"]),
    install_requires=[
        "torch>=2.5",
        # Triton ships wheels for Linux x86_64/aarch64 only; elsewhere the eager paths still run.
        "triton>=3.2; platform_system == 'Linux' and (platform_machine == 'x86_64' or platform_machine == 'aarch64')",
        "einops>=0.7",
        "safetensors>=0.4",
        "numpy>=1.24",
        "pillow>=10",
        "av>=12",
        "tqdm>=4.60",
        # Figures (attention maps, training curves, confusion matrices, benchmark charts), headless (Agg).
        "matplotlib>=3.8",
        # Scenic (Flax) checkpoints are msgpack files: read them without installing JAX.
        "msgpack>=1.0",
        # The models are transformers models (PreTrainedModel, Auto classes, checkpoint conversion mapping).
        "transformers>=5.17",
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-benchmark>=4", "peft>=0.17", "accelerate>=1.0", "ruff>=0.6", "hypothesis>=6"],
        # `vivit train --log tensorboard` (torch.utils.tensorboard's SummaryWriter needs it)
        "tensorboard": ["tensorboard>=2.14"],
        # `backend="torchcodec"` decoding (also needs FFmpeg's shared libraries, e.g. apt-get install ffmpeg).
        # 0.12-0.13 are the CPU builds for torch >= 2.11; later wheels on the default index link CUDA 13's
        # libraries (libtorch_cuda, libnvrtc) and fail to import beside a CPU torch.
        "torchcodec": ["torchcodec>=0.12,<0.14"],
    },
    entry_points={"console_scripts": ["vivit=vivit.cli:main"]},
)
