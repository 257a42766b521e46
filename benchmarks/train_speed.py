"""Training throughput (examples/s) of each model on this machine, as a Markdown table.

    python benchmarks/train_speed.py [--steps 20] [--batch-size 16] [--frames 64]

Times the jitted train step (forward, backward, AdamW update) on synthetic
batches after one warm-up (compile) step, with the paper-sized models of
`conf/model/` on one device. An example is one window of `--frames` frames
for the chroma models (at 10 Hz, 6.4 s of audio for 64 frames) and one
shingle for the embedder.
"""

from __future__ import annotations

import argparse
import time

import jax
import optax
from flax import nnx

import models
from _timing import RECORD_HELP, recorded_output
from experiments.config import build_model
from experiments.training import loop
from experiments.training import objectives
from experiments.training import synthetic

CASES = [
    # (label, model config, inputs, objective)
    ("ctc_chroma (SalienceCNN, CTC)", dict(_target_="models.SalienceCNN", num_harmonics=6, num_bins=216, num_classes=13,
     channels=(32, 32, 32), kernels=((5, 5), (3, 3), (3, 3)), wide_kernel=(3, 70), wide_channels=8,
     dropout=0.1), "hcqt", objectives.ctc),
    ("soft_dtw_chroma (SalienceCNN, soft-DTW)", dict(_target_="models.SalienceCNN", num_harmonics=6, num_bins=216,
     num_classes=12, channels=(32, 32, 32), kernels=((5, 5), (3, 3), (3, 3)), wide_kernel=(3, 70),
     wide_channels=8, dropout=0.1), "hcqt", objectives.soft_dtw),
    ("strong_chroma (SalienceCNN, BCE)", dict(_target_="models.SalienceCNN", num_harmonics=6, num_bins=216,
     num_classes=12, channels=(32, 32, 32), kernels=((5, 5), (3, 3), (3, 3)), wide_kernel=(3, 70),
     wide_channels=8, dropout=0.1), "hcqt", objectives.strong_bce),
    ("deep_chroma (DeepChroma, BCE)", dict(_target_="models.DeepChroma", num_bins=120, context=15,
     hidden=(512, 512, 512), dropout=0.5), "logfreq", objectives.strong_bce),
    ("shingle_embedder_12 (triplet)", dict(_target_="models.ShingleEmbedder", embedding_dim=12), "shingles",
     objectives.triplet),
]


def examples_per_second(model_cfg, inputs, objective, *, steps, batch_size, frames) -> tuple[float, int]:
    model = build_model(model_cfg, seed=0)
    optimizer = nnx.Optimizer(model, optax.adamw(1e-3), wrt=nnx.Param)
    if inputs == "shingles":
        batch = synthetic.shingle_examples(batch_size, seed=0)
    else:
        batch = synthetic.chroma_examples(batch_size, seed=0, num_frames=frames, inputs=inputs,
                                          num_bins=model_cfg["num_bins"])
    batch = jax.device_put(batch)
    step = loop.make_train_step(loop.make_loss_fn(objective))
    metrics = nnx.MultiMetric(loss=nnx.metrics.Average("loss"))
    key = jax.random.key(0)
    jax.block_until_ready(step(model, optimizer, metrics, batch, key))  # compile
    start = time.perf_counter()
    for i in range(steps):
        loss = step(model, optimizer, metrics, batch, jax.random.fold_in(key, i))
    jax.block_until_ready(loss)
    return steps * batch_size / (time.perf_counter() - start), models.count_params(model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--record", action="store_true", help=RECORD_HELP)
    args = parser.parse_args()
    with recorded_output(args.record):
        device = jax.devices()[0]
        print(f"device: {device.platform} ({device.device_kind}), batch {args.batch_size}, "
              f"{args.frames} frames per chroma example, {args.steps} timed steps\n")
        print("| model (loss) | parameters | examples/s |")
        print("| --- | ---: | ---: |")
        for label, cfg, inputs, objective in CASES:
            rate, params = examples_per_second(cfg, inputs, objective, steps=args.steps,
                                               batch_size=args.batch_size, frames=args.frames)
            print(f"| {label} | {params:,} | {rate:,.1f} |", flush=True)


if __name__ == "__main__":
    main()
