# unlearn_bench on a CUDA machine. Build and run a paper sweep (models and data come from the hub,
# cached in the mounted /cache; results land in the mounted /workspace/multirun):
#   docker build -t unlearn-bench .
#   docker run --gpus all -v $PWD/cache:/cache -v $PWD/multirun:/workspace/multirun -e HF_TOKEN \
#     unlearn-bench -m multirun_sweeps=table2_attack model=llama32_1b data=tofu trainer=gpu
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

WORKDIR /opt/unlearn_bench
COPY pyproject.toml README.md ./
# conf/ and multirun_sweeps/ are the configs' home; unlearn_bench/conf links to them, and the
# wheel pip builds here carries them inside the package.
COPY conf ./conf
COPY multirun_sweeps ./multirun_sweeps
COPY unlearn_bench ./unlearn_bench
# torch comes with the image (the CUDA build); pip keeps it since it satisfies torch>=2.4.
RUN pip install --no-cache-dir ".[lora,slurm]"

ENV UNLEARN_BENCH_CACHE=/cache \
    HF_HOME=/cache/huggingface \
    WANDB_MODE=offline
WORKDIR /workspace
ENTRYPOINT ["unlearn-bench"]
