"""ganimate's `--arch tutorial` training step against the TensorFlow DCGAN tutorial's own, in one invocation.

    python bench/vs_tensorflow.py                                  # batch 256, 2 threads, 2 rounds
    python bench/vs_tensorflow.py --tf-python /work/tfvenv/bin/python --threads 2 --steps 20

The TensorFlow side is the tutorial's code (tensorflow.org/tutorials/generative/dcgan): its generator and
discriminator layer for layer, BinaryCrossentropy from logits, Adam(1e-4) for each, batch 256 and its
`@tf.function` train_step (noise drawn inside the step), in float32 as the tutorial runs. ganimate's side is
`--arch tutorial` (the same pair; unconditional), Adam at 1e-4 too, through `ganimate.train.train_step` in the
precision `--precision auto` resolves to here. Both get the same fixed batch of images in [-1, 1] (no data
pipeline on either side), the same batch size and the same thread count (torch.set_num_threads; TensorFlow's
intra- and inter-op pools), and each is timed after warm-up steps. The rounds alternate TensorFlow and
ganimate, so a change of machine load hits both; the best round of each is reported, and the ratio of those.

Then the ceiling: the FLOPs of one training image (torch.utils.flop_counter: convolutions and matrix products)
of ganimate's step (D updated, then G against the updated D: three passes of D) and of the tutorial's (both
gradients from one forward: two passes of D, counted on the same PyTorch modules), and this machine's
convolution peak (`bench/throughput.py`'s large 3x3 convolution, in fp32 and in ganimate's precision). It prints
the share of that peak each side reaches and the share a given ratio (`--target`, 1.5) would need: past 100%, no
kernel tuning reaches it.

TensorFlow is an optional bench dependency, never a runtime one. It runs in a subprocess of `--tf-python`
(default: this interpreter), so it can live in a venv of its own:

    python -m venv /work/tfvenv && /work/tfvenv/bin/pip install tensorflow-cpu

Without TensorFlow the script says how to install it and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

TUTORIAL_LR = 1e-4
INSTALL = ("TensorFlow is not installed for {python}: pip install tensorflow-cpu (into this venv, or into a venv "
           "of its own, e.g. python -m venv /work/tfvenv && /work/tfvenv/bin/pip install tensorflow-cpu, then "
           "--tf-python /work/tfvenv/bin/python)")


# ---------------------------------------------------------------- TensorFlow: the tutorial's step (subprocess)


def tf_worker(batch_size: int, steps: int, warmup: int, threads: int) -> dict:
    """Images/s of the TF DCGAN tutorial's train_step, after `warmup` steps (imports TensorFlow only)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    from tensorflow.keras import layers

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)

    def make_generator_model():
        model = tf.keras.Sequential()
        model.add(tf.keras.Input(shape=(100,)))
        model.add(layers.Dense(7 * 7 * 256, use_bias=False))
        model.add(layers.BatchNormalization())
        model.add(layers.LeakyReLU())
        model.add(layers.Reshape((7, 7, 256)))
        model.add(layers.Conv2DTranspose(128, (5, 5), strides=(1, 1), padding="same", use_bias=False))
        model.add(layers.BatchNormalization())
        model.add(layers.LeakyReLU())
        model.add(layers.Conv2DTranspose(64, (5, 5), strides=(2, 2), padding="same", use_bias=False))
        model.add(layers.BatchNormalization())
        model.add(layers.LeakyReLU())
        model.add(layers.Conv2DTranspose(1, (5, 5), strides=(2, 2), padding="same", use_bias=False,
                                         activation="tanh"))
        return model

    def make_discriminator_model():
        model = tf.keras.Sequential()
        model.add(tf.keras.Input(shape=(28, 28, 1)))
        model.add(layers.Conv2D(64, (5, 5), strides=(2, 2), padding="same"))
        model.add(layers.LeakyReLU())
        model.add(layers.Dropout(0.3))
        model.add(layers.Conv2D(128, (5, 5), strides=(2, 2), padding="same"))
        model.add(layers.LeakyReLU())
        model.add(layers.Dropout(0.3))
        model.add(layers.Flatten())
        model.add(layers.Dense(1))
        return model

    generator, discriminator = make_generator_model(), make_discriminator_model()
    cross_entropy = tf.keras.losses.BinaryCrossentropy(from_logits=True)
    generator_optimizer = tf.keras.optimizers.Adam(TUTORIAL_LR)
    discriminator_optimizer = tf.keras.optimizers.Adam(TUTORIAL_LR)
    noise_dim = 100

    def discriminator_loss(real_output, fake_output):
        real_loss = cross_entropy(tf.ones_like(real_output), real_output)
        fake_loss = cross_entropy(tf.zeros_like(fake_output), fake_output)
        return real_loss + fake_loss

    def generator_loss(fake_output):
        return cross_entropy(tf.ones_like(fake_output), fake_output)

    @tf.function
    def train_step(images):
        noise = tf.random.normal([batch_size, noise_dim])
        with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
            generated_images = generator(noise, training=True)
            real_output = discriminator(images, training=True)
            fake_output = discriminator(generated_images, training=True)
            gen_loss = generator_loss(fake_output)
            disc_loss = discriminator_loss(real_output, fake_output)
        gradients_of_generator = gen_tape.gradient(gen_loss, generator.trainable_variables)
        gradients_of_discriminator = disc_tape.gradient(disc_loss, discriminator.trainable_variables)
        generator_optimizer.apply_gradients(zip(gradients_of_generator, generator.trainable_variables))  # noqa: B905
        discriminator_optimizer.apply_gradients(zip(gradients_of_discriminator, discriminator.trainable_variables))  # noqa: B905, E501

    images = tf.random.uniform([batch_size, 28, 28, 1], -1.0, 1.0, seed=0)  # (B, H, W, C)
    for _ in range(warmup):
        train_step(images)
    generator.trainable_variables[0].numpy()  # wait for the warm-up to finish
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step(images)
    generator.trainable_variables[0].numpy()
    seconds = time.perf_counter() - t0
    return {"images_per_s": steps * batch_size / seconds, "version": tf.__version__,
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on for x86)")}


def tf_rate(python: str, batch_size: int, steps: int, warmup: int, threads: int) -> dict | None:
    """Run `tf_worker` in a fresh `python` process; None when TensorFlow cannot be imported there."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TF_CPP_MIN_LOG_LEVEL": "2"}
    cmd = [python, os.path.abspath(__file__), "--tf-worker", "--batch-size", str(batch_size), "--steps", str(steps),
           "--warmup", str(warmup), "--threads", str(threads)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode == 3:
        return None
    if proc.returncode != 0:
        raise SystemExit(f"the TensorFlow worker failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- ganimate: --arch tutorial (this process)


def tutorial_gan(batch_size: int, precision: str, memory_format: str = "auto"):
    """(GanState, z_dim, memory format) of `--arch tutorial`, unconditional, Adam at the tutorial's 1e-4, laid out
    as `ganimate train --memory-format memory_format` lays it out on the CPU; `precision` already resolved (fp32 or
    bf16)."""
    import torch

    from ganimate.config import TrainConfig
    from ganimate.gan import GanState
    from ganimate.train import training_models

    device = torch.device("cpu")
    cfg = TrainConfig(dataset="mnist", arch="tutorial", image_size=28, channels=1, num_classes=0, conditional=False,
                      batch_size=batch_size, precision=precision, memory_format=memory_format)
    torch.manual_seed(0)
    G, D, memory_format = training_models(cfg, device)
    gan = GanState.create(G, D, lr_g=TUTORIAL_LR, lr_d=TUTORIAL_LR, betas=(0.5, 0.999), seed=0, precision=precision,
                          device=device)
    return gan, cfg.z_dim, memory_format


def ganimate_rate(batch_size: int, steps: int, warmup: int, threads: int, precision: str,
                  memory_format: str = "auto") -> dict:
    """Images/s of ganimate's training step on `--arch tutorial`, unconditional, after `warmup` steps."""
    import torch

    from ganimate.runtime import keep_freed_memory, resolve_precision
    from ganimate.train import train_step

    torch.set_num_threads(threads)
    keep_freed_memory()  # as the ganimate command does
    precision = resolve_precision(precision, torch.device("cpu"))
    gan, z_dim, memory_format = tutorial_gan(batch_size, precision, memory_format)

    def step(x):
        train_step(gan, x, None, torch.randn(batch_size, z_dim))  # noise drawn every step, as TF's

    x = torch.rand(batch_size, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1  # (B, C, H, W)
    for _ in range(warmup):
        step(x)
    t0 = time.perf_counter()
    for _ in range(steps):
        step(x)
    return {"images_per_s": steps * batch_size / (time.perf_counter() - t0), "version": torch.__version__,
            "precision": precision, "memory_format": memory_format}


def step_flops(batch_size: int = 64) -> dict:
    """FLOPs per training image on --arch tutorial: ganimate's step, and the TF tutorial's (one forward of G and
    two of D; D's gradients from its loss, G's from its own, as the two tapes take them), on the same modules."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ganimate import losses
    from ganimate.train import train_step

    gan, z_dim, _ = tutorial_gan(batch_size, "fp32")
    G, D = gan.G, gan.D
    x, z = torch.rand(batch_size, 1, 28, 28) * 2 - 1, torch.randn(batch_size, z_dim)
    with FlopCounterMode(display=False) as ours:
        train_step(gan, x, None, z)
    with FlopCounterMode(display=False) as theirs:
        fake = G(z)
        real_out, fake_out = D(x), D(fake)
        torch.autograd.grad(losses.g_loss(fake_out, "bce"), list(G.parameters()), retain_graph=True)
        torch.autograd.grad(losses.d_loss(real_out, fake_out, "bce"), list(D.parameters()))
    return {"ganimate": ours.get_total_flops() / batch_size, "tensorflow": theirs.get_total_flops() / batch_size}


def ceiling(tf_rate: float, ga_rate: float, threads: int, target: float, precision: str = "fp32") -> list[str]:
    """Lines saying what share of this machine's conv peak each side reaches (TensorFlow against the fp32 peak,
    ganimate against the peak of its `precision`) and what share `target` would need."""
    import torch

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from throughput import conv_peak

    torch.set_num_threads(threads)
    flops = step_flops()
    peaks = {p: conv_peak(torch.bfloat16 if p == "bf16" else torch.float32) for p in dict.fromkeys(["fp32", precision])}
    need = target * tf_rate * flops["ganimate"] / 1e9

    def share(rate: float, per_image: float, p: str) -> str:
        achieved = rate * per_image / 1e9
        return f"{achieved:6,.0f} GFLOP/s = {100 * achieved / peaks[p]:3.0f}% of the {p} peak"

    return ["ceiling: conv peak (3x3 conv 128->128 at 28x28, batch 64) "
            + ", ".join(f"{p} {g:,.0f} GFLOP/s" for p, g in peaks.items())
            + f"; FLOPs per image: ganimate's step {flops['ganimate'] / 1e6:.0f} M, the tutorial's "
            f"{flops['tensorflow'] / 1e6:.0f} M",
            f"  TensorFlow {share(tf_rate, flops['tensorflow'], 'fp32')}",
            f"  ganimate   {share(ga_rate, flops['ganimate'], precision)}",
            f"  {target:g}x TensorFlow would need ganimate at {need:,.0f} GFLOP/s = "
            f"{100 * need / peaks[precision]:.0f}% of the {precision} peak"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round and side")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="alternating TF / ganimate rounds; the best counts")
    parser.add_argument("--precision", default="auto", help="ganimate's: auto | fp32 | bf16 (TF runs fp32)")
    parser.add_argument("--memory-format", default="auto", choices=("auto", "contiguous", "channels_last"),
                        help="ganimate's layout (auto: as `ganimate train` picks it here)")
    parser.add_argument("--tf-python", default=sys.executable, help="the Python with TensorFlow installed")
    parser.add_argument("--target", type=float, default=1.5, help="the ratio whose cost the ceiling lines state")
    parser.add_argument("--tf-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.tf_worker:
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            sys.exit(3)
        print(json.dumps(tf_worker(args.batch_size, args.steps, args.warmup, args.threads)))
        return

    tf_runs, ga_runs = [], []
    for r in range(args.rounds):
        tf = tf_rate(args.tf_python, args.batch_size, args.steps, args.warmup, args.threads)
        if tf is None:
            print(INSTALL.format(python=args.tf_python), file=sys.stderr)
            sys.exit(2)
        ga = ganimate_rate(args.batch_size, args.steps, args.warmup, args.threads, args.precision, args.memory_format)
        tf_runs.append(tf)
        ga_runs.append(ga)
        print(f"round {r + 1}: TensorFlow {tf['images_per_s']:,.0f} img/s, ganimate {ga['images_per_s']:,.0f} img/s",
              flush=True)
    tf_best = max(tf_runs, key=lambda d: d["images_per_s"])
    ga_best = max(ga_runs, key=lambda d: d["images_per_s"])
    ratio = ga_best["images_per_s"] / tf_best["images_per_s"]
    print(f"DCGAN tutorial pair, batch {args.batch_size}, {args.threads} threads, {args.steps} timed steps after "
          f"{args.warmup} warm-up, best of {args.rounds} alternating rounds")
    print(f"  TensorFlow {tf_best['version']} (tf.function, fp32)      {tf_best['images_per_s']:8,.0f} img/s")
    print(f"  ganimate, torch {ga_best['version']} ({ga_best['precision']}, {ga_best['memory_format']})  "
          f"{ga_best['images_per_s']:8,.0f} img/s")
    print(f"  ratio ganimate / TensorFlow  {ratio:.2f}x")
    print("\n".join(ceiling(tf_best["images_per_s"], ga_best["images_per_s"], args.threads, args.target,
                             ga_best["precision"])))


if __name__ == "__main__":
    main()
