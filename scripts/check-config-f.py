#!/usr/bin/env python3
"""Checks isfgan's StyleGAN2 generator against PyTorch at the real config-f size.

What it does
  1. A small, independent PyTorch forward pass of the rosinality StyleGAN2 generator
     (mapping: pixel norm + equalised-lr linear layers with fused leaky ReLU; synthesis:
     constant input, modulated/demodulated 3x3 convolutions, transposed-conv upsampling
     followed by the [1,3,3,1] blur, noise injection, to-RGB skips upsampled by upfirdn)
     is written out below from the published math, reading a rosinality-layout state dict.
  2. It is first checked against the reference fixtures (written by rosinality's own code):
     img_wplus.npy from wplus.npy, and w.npy from z.npy, for stylegan2-tiny and
     stylegan2-small; the key names and shapes it would write for those channel tables
     must equal the fixtures' state dicts exactly.
  3. It then builds random config-f generators (style 512, 8 mapping layers, channel
     multiplier 2; 512 channels up to 64 px, then 256, 128, 64, 32 for 128..1024 px) at
     256 and 1024 px with a fixed seed, saves each as torch.save({'g_ema': state_dict,
     'latent_avg': w_mean}) in rosinality's key layout, and renders two random W+ codes
     (and two z codes, to cover the mapping network) with both PyTorch and
     `isfgan generate ... --noise const --save-raw`, comparing the unclamped images.

A row passes when max |isfgan - torch| <= 1e-4 * max(1, max |torch|). When a row
fails, the script truncates the generator to 8, 16, ... px (a prefix of a rosinality
generator is itself a valid generator whose output is the running RGB image at that
resolution) and prints the same comparison per resolution to show where it starts.

How to run (from the repository root; the checkpoints go to a temp folder, or --workdir):
  python3 scripts/check-config-f.py [--isfgan PATH] [--fixtures DIR] [--workdir DIR]
                                    [--sizes 256,1024] [--threads N] [--skip-z] [--f64]
  isfgan defaults to $ISFGAN, then .build/release/isfgan, then `isfgan` on PATH;
  fixtures default to $ISFGAN_FIXTURES, then ../shared/fixtures.
  At 1024 px the torch pass takes some seconds per image on one thread and the
  checkpoint is about 120 MB; peak memory is about 2 GB (4 GB with --f64). The whole
  run takes about a minute on one thread.

Exit codes: 0 every check passed, 1 a check failed (or isfgan/fixtures unusable),
77 skipped because torch (or numpy) is not importable.
"""
import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"torch/numpy not importable ({e}); skipping (exit 77)")
    sys.exit(77)

LR_MLP = 0.01
SLOPE = 0.2
ACT_GAIN = math.sqrt(2.0)
BLUR = [1.0, 3.0, 3.0, 1.0]
REL_TOL = 1e-4


# ----------------------------------------------------------------------------------------
# Architecture description: channel tables and the rosinality state-dict key layout.

def config_f_channels(size, multiplier=2):
    """Channels per resolution 4..size for config-f (rosinality's table)."""
    table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * multiplier,
             128: 128 * multiplier, 256: 64 * multiplier, 512: 32 * multiplier,
             1024: 16 * multiplier}
    return [table[4 << i] for i in range(int(math.log2(size)) - 1)]


def fir_kernel(scale):
    """The 2-D [1,3,3,1] kernel normalised to sum 1, times `scale`."""
    k = torch.tensor(BLUR, dtype=torch.float32)
    k2 = k[None, :] * k[:, None]
    return k2 / k2.sum() * scale


def layout(channels, style_dim, n_mlp):
    """OrderedDict key -> shape, in the order rosinality's Generator.state_dict() lists them.

    channels[i] is the width at resolution 4 * 2**i.
    """
    keys = OrderedDict()
    for i in range(1, n_mlp + 1):
        keys[f"style.{i}.weight"] = (style_dim, style_dim)
        keys[f"style.{i}.bias"] = (style_dim,)
    c0 = channels[0]
    keys["input.input"] = (1, c0, 4, 4)

    def styled(prefix, cin, cout, up):
        keys[f"{prefix}.conv.weight"] = (1, cout, cin, 3, 3)
        if up:
            keys[f"{prefix}.conv.blur.kernel"] = (4, 4)
        keys[f"{prefix}.conv.modulation.weight"] = (cin, style_dim)
        keys[f"{prefix}.conv.modulation.bias"] = (cin,)
        keys[f"{prefix}.noise.weight"] = (1,)
        keys[f"{prefix}.activate.bias"] = (cout,)

    def to_rgb(prefix, cin, up):
        keys[f"{prefix}.bias"] = (1, 3, 1, 1)
        if up:
            keys[f"{prefix}.upsample.kernel"] = (4, 4)
        keys[f"{prefix}.conv.weight"] = (1, 3, cin, 1, 1)
        keys[f"{prefix}.conv.modulation.weight"] = (cin, style_dim)
        keys[f"{prefix}.conv.modulation.bias"] = (cin,)

    styled("conv1", c0, c0, False)
    to_rgb("to_rgb1", c0, False)
    for j in range(1, len(channels)):
        styled(f"convs.{2 * j - 2}", channels[j - 1], channels[j], True)
        styled(f"convs.{2 * j - 1}", channels[j], channels[j], False)
    for j in range(1, len(channels)):
        to_rgb(f"to_rgbs.{j - 1}", channels[j], True)
    for n in range(2 * len(channels) - 1):
        r = 4 << ((n + 1) // 2)
        keys[f"noises.noise_{n}"] = (1, 1, r, r)
    return keys


def read_config(sd):
    """(channels, style_dim, n_mlp) read off a rosinality generator state dict."""
    n_mlp = 0
    while f"style.{n_mlp + 1}.weight" in sd:
        n_mlp += 1
    style_dim = sd["style.1.weight"].shape[1]
    channels = [sd["input.input"].shape[1]]
    i = 0
    while f"convs.{i}.conv.weight" in sd:
        channels.append(sd[f"convs.{i}.conv.weight"].shape[1])
        i += 2
    return channels, style_dim, n_mlp


def n_latent(channels):
    return 2 * (len(channels) + 1) - 2


# ----------------------------------------------------------------------------------------
# The forward pass (own implementation of the math; NCHW, float32 or float64).

def lrelu(x, bias):
    """Fused leaky ReLU on the CPU: leaky_relu(x + b, 0.2) * sqrt(2), b broadcast on dim 1."""
    shape = [1, -1] + [1] * (x.dim() - 2)
    return F.leaky_relu(x + bias.view(shape), SLOPE) * ACT_GAIN


def upfirdn(x, kernel, up, pad0, pad1):
    """Zero-insert upsampling by `up`, pad (pad0 before, pad1 after) on both axes, then a
    depthwise correlation with the flipped FIR kernel (rosinality's upfirdn2d, down=1)."""
    n, c, h, w = x.shape
    if up > 1:
        z = x.new_zeros(n, c, h, up, w, up)
        z[:, :, :, 0, :, 0] = x
        x = z.view(n, c, h * up, w * up)
    x = F.pad(x, [pad0, pad1, pad0, pad1])
    k = torch.flip(kernel, [0, 1]).to(x.dtype)
    k = k.view(1, 1, *k.shape).repeat(c, 1, 1, 1)
    return F.conv2d(x, k, groups=c)


def modulated_conv(sd, prefix, x, w, demodulate, upsample):
    """StyleGAN2 modulated convolution with per-sample weights (grouped conv)."""
    weight = sd[f"{prefix}.weight"]  # (1, out, in, k, k)
    _, cout, cin, ks, _ = weight.shape
    mw = sd[f"{prefix}.modulation.weight"]
    mb = sd[f"{prefix}.modulation.bias"]
    style = F.linear(w, mw / math.sqrt(mw.shape[1]), mb)  # (N, in)
    n = x.shape[0]
    wt = weight / math.sqrt(cin * ks * ks) * style.view(n, 1, cin, 1, 1)
    if demodulate:
        d = torch.rsqrt(wt.pow(2).sum(dim=[2, 3, 4]) + 1e-8)
        wt = wt * d.view(n, cout, 1, 1, 1)
    h, wd = x.shape[2], x.shape[3]
    xg = x.reshape(1, n * cin, h, wd)
    if upsample:
        # transposed convolution wants (in, out, k, k) per group
        wt = wt.transpose(1, 2).reshape(n * cin, cout, ks, ks)
        y = F.conv_transpose2d(xg, wt, stride=2, padding=0, groups=n)
        y = y.view(n, cout, y.shape[2], y.shape[3])
        # 3x3 transposed conv of stride 2 gives 2h+1; the blur (kernel*4, pad 1,1) gives 2h
        return upfirdn(y, fir_kernel(4.0), 1, 1, 1)
    wt = wt.reshape(n * cout, cin, ks, ks)
    y = F.conv2d(xg, wt, padding=ks // 2, groups=n)
    return y.view(n, cout, h, wd)


def styled_conv(sd, prefix, x, w, noise, upsample):
    y = modulated_conv(sd, f"{prefix}.conv", x, w, True, upsample)
    y = y + sd[f"{prefix}.noise.weight"] * noise
    return lrelu(y, sd[f"{prefix}.activate.bias"])


def to_rgb(sd, prefix, x, w, skip):
    y = modulated_conv(sd, f"{prefix}.conv", x, w, False, False) + sd[f"{prefix}.bias"]
    if skip is not None:
        # upsample by 2 with kernel*4, pad (2, 1)
        y = y + upfirdn(skip, fir_kernel(4.0), 2, 2, 1)
    return y


def mapping(sd, z):
    """z (N, D) -> w (N, D): pixel norm, then the equalised-lr layers with fused lrelu."""
    x = z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)
    i = 1
    while f"style.{i}.weight" in sd:
        wt = sd[f"style.{i}.weight"]
        x = F.linear(x, wt * (LR_MLP / math.sqrt(wt.shape[1])))
        x = lrelu(x, sd[f"style.{i}.bias"] * LR_MLP)
        i += 1
    return x


def synthesis(sd, wplus):
    """W+ (N, L, D) -> image (N, 3, size, size), noise = the stored noises.noise_i maps."""
    channels, _, _ = read_config(sd)
    n = wplus.shape[0]
    x = sd["input.input"].repeat(n, 1, 1, 1)
    x = styled_conv(sd, "conv1", x, wplus[:, 0], sd["noises.noise_0"], False)
    img = to_rgb(sd, "to_rgb1", x, wplus[:, 1], None)
    for j in range(1, len(channels)):
        a, b = 2 * j - 2, 2 * j - 1
        x = styled_conv(sd, f"convs.{a}", x, wplus[:, a + 1], sd[f"noises.noise_{a + 1}"], True)
        x = styled_conv(sd, f"convs.{b}", x, wplus[:, b + 1], sd[f"noises.noise_{b + 1}"], False)
        img = to_rgb(sd, f"to_rgbs.{j - 1}", x, wplus[:, b + 2], img)
    return img


def truncated(sd, size):
    """The generator's prefix up to `size` px: its output is the running RGB image there."""
    channels, style_dim, n_mlp = read_config(sd)
    keep = layout(channels[: int(math.log2(size)) - 1], style_dim, n_mlp)
    return OrderedDict((k, sd[k]) for k in keep)


# ----------------------------------------------------------------------------------------
# Random config-f generators.

def random_generator(size, seed, style_dim=512, n_mlp=8, multiplier=2):
    """A config-f state dict with random weights, rosinality's layout (buffers included)."""
    g = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=g)

    sd = OrderedDict()
    for key, shape in layout(config_f_channels(size, multiplier), style_dim, n_mlp).items():
        if key.endswith(".kernel"):
            t = fir_kernel(4.0)
        elif key.startswith("style.") and key.endswith(".weight"):
            t = randn(*shape) / LR_MLP  # rosinality's init: effective N(0, 1/in)
        elif key.startswith("style.") and key.endswith(".bias"):
            t = 5.0 * randn(*shape)  # effective 0.05 * N(0, 1) after lr_mul
        elif key.endswith("modulation.bias"):
            t = 1.0 + 0.1 * randn(*shape)
        elif key.endswith("noise.weight") or key.endswith("activate.bias"):
            t = 0.1 * randn(*shape)
        elif key.startswith("to_rgb") and key.endswith(".bias") and ".conv." not in key:
            t = 0.1 * randn(*shape)
        else:  # conv and modulation weights, the constant input, the noise maps
            t = randn(*shape)
        sd[key] = t.contiguous()
    # per-module versions, as a module's state_dict() carries them (loaders may ignore)
    prefixes = {""}
    for key in sd:
        parts = key.split(".")[:-1]
        prefixes.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    if n_mlp:
        prefixes.add("style.0")  # the pixel-norm module, which has no tensors
    sd._metadata = OrderedDict((p, {"version": 1}) for p in sorted(prefixes))
    return sd


# ----------------------------------------------------------------------------------------
# Helpers.

def load_g_ema(path):
    obj = torch.load(path, map_location="cpu", weights_only=True)
    return OrderedDict((k, v.float()) for k, v in obj["g_ema"].items())


def cast(sd, dtype):
    return OrderedDict((k, v.to(dtype)) for k, v in sd.items())


def tolerance(ref):
    return REL_TOL * max(1.0, float(np.abs(ref).max()))


def run_isfgan(isfgan, gen_path, codes, space, workdir, tag, threads):
    """Renders `codes` with isfgan; returns (raw images, W+ codes used, seconds)."""
    codes_path = os.path.join(workdir, f"{tag}-codes.npy")
    raw_path = os.path.join(workdir, f"{tag}-raw.npy")
    lat_path = os.path.join(workdir, f"{tag}-latents.npy")
    out_dir = os.path.join(workdir, f"{tag}-png")
    np.save(codes_path, codes.astype(np.float32))
    for p in (raw_path, lat_path):
        if os.path.exists(p):
            os.remove(p)
    cmd = [isfgan, "generate", "--generator", gen_path, "--latents", codes_path,
           "--space", space, "--noise", "const", "--save-raw", raw_path,
           "--save-latents", lat_path, "--out", out_dir, "--threads", str(threads)]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {res.returncode}:\n"
                           f"{res.stdout[-2000:]}{res.stderr[-2000:]}")
    return np.load(raw_path), np.load(lat_path), secs


def inspect_line(isfgan, path):
    res = subprocess.run([isfgan, "inspect", path], capture_output=True, text=True)
    text = (res.stdout + res.stderr).strip().splitlines()
    hit = [l for l in text if "StyleGAN2" in l]
    return (hit or text or ["(no output)"])[0].strip()


def torch_render(sd, wplus):
    """One image at a time (keeps memory low at 1024 px); returns (images, s/image)."""
    outs, t0 = [], time.perf_counter()
    with torch.no_grad():
        for i in range(wplus.shape[0]):
            outs.append(synthesis(sd, wplus[i:i + 1]))
    return torch.cat(outs).numpy(), (time.perf_counter() - t0) / wplus.shape[0]


# ----------------------------------------------------------------------------------------
# 1-2: the torch implementation against rosinality's own output.

def check_fixtures(fixtures):
    ok = True
    print("== PyTorch implementation vs rosinality fixtures ==")
    for case in ("stylegan2-tiny", "stylegan2-small"):
        d = os.path.join(fixtures, case)
        sd = load_g_ema(os.path.join(d, f"{case}.pt"))
        channels, style_dim, n_mlp = read_config(sd)
        want = layout(channels, style_dim, n_mlp)
        got = OrderedDict((k, tuple(v.shape)) for k, v in sd.items())
        same_layout = list(want.items()) == list(got.items())
        kern = max(float((sd[k] - fir_kernel(4.0)).abs().max())
                   for k in sd if k.endswith(".kernel"))
        with torch.no_grad():
            img = synthesis(sd, torch.from_numpy(np.load(os.path.join(d, "wplus.npy")))).numpy()
            w = mapping(sd, torch.from_numpy(np.load(os.path.join(d, "z.npy")))).numpy()
        ref_img = np.load(os.path.join(d, "img_wplus.npy"))
        ref_w = np.load(os.path.join(d, "w.npy"))
        d_img = float(np.abs(img - ref_img).max())
        d_w = float(np.abs(w - ref_w).max())
        good = (same_layout and kern == 0 and d_img <= tolerance(ref_img)
                and d_w <= tolerance(ref_w))
        ok &= good
        print(f"{case}: key layout {'same' if same_layout else 'DIFFERENT'} "
              f"({len(got)} keys), FIR kernels diff {kern:.1e}; "
              f"img_wplus max|ref| {np.abs(ref_img).max():.3f} diff {d_img:.2e} "
              f"(tol {tolerance(ref_img):.1e}); w diff {d_w:.2e} "
              f"(tol {tolerance(ref_w):.1e}) -> {'pass' if good else 'FAIL'}")
        if not same_layout:
            for k in sorted(set(want.items()) ^ set(got.items()))[:10]:
                print(f"    differs: {k}")
    return ok


# ----------------------------------------------------------------------------------------
# 3-4: config-f, torch vs isfgan.

def per_resolution(isfgan, sd, wplus, workdir, size, threads):
    """After a failure: the same comparison for every prefix of the generator."""
    print(f"   per-resolution comparison for {size} px (prefix generators):")
    r = 8
    while r <= size:
        sub = truncated(sd, r)
        path = os.path.join(workdir, f"prefix-{size}-{r}.pt")
        torch.save({"g_ema": sub, "latent_avg": torch.zeros(wplus.shape[2])}, path)
        rows = n_latent(read_config(sub)[0])
        codes = wplus[:, :rows].contiguous()
        ref, _ = torch_render(sub, codes)
        got, _, _ = run_isfgan(isfgan, path, codes.numpy(), "wplus", workdir,
                               f"prefix-{size}-{r}", threads)
        diff = float(np.abs(got - ref).max())
        print(f"     {r:5d} px: max|ref| {np.abs(ref).max():9.4f}  diff {diff:.3e}  "
              f"tol {tolerance(ref):.1e}  {'pass' if diff <= tolerance(ref) else 'FAIL'}")
        os.remove(path)
        r *= 2


def check_config_f(isfgan, sizes, workdir, threads, seed, with_z, f64):
    print("\n== config-f (style 512, n_mlp 8, channel multiplier 2), torch vs isfgan ==")
    rows, ok = [], True
    for size in sizes:
        sd = random_generator(size, seed + size)
        channels = config_f_channels(size)
        L = n_latent(channels)
        g = torch.Generator().manual_seed(seed + size + 1)
        z_mean = torch.randn(1000, 512, generator=g)
        with torch.no_grad():
            latent_avg = mapping(sd, z_mean).mean(0)
        z = torch.randn(2, 512, generator=g)
        with torch.no_grad():
            w = mapping(sd, z)
        wplus = w[:, None, :].repeat(1, L, 1) + 0.3 * torch.randn(2, L, 512, generator=g)
        path = os.path.join(workdir, f"config-f-{size}.pt")
        torch.save({"g_ema": sd, "latent_avg": latent_avg}, path)
        nparams = sum(v.numel() for k, v in sd.items()
                      if not (k.startswith("noises.") or k.endswith(".kernel")))
        print(f"{size} px: channels {'/'.join(map(str, channels))}, n_latent {L}, "
              f"{nparams:,} parameters, {os.path.getsize(path) / 2**20:.1f} MiB -> {path}")
        print(f"   isfgan inspect: {inspect_line(isfgan, path)}")

        cases = [("wplus", wplus)] + ([("z", z)] if with_z else [])
        for space, codes in cases:
            wp = wplus if space == "wplus" else w[:, None, :].repeat(1, L, 1)
            ref, t_img = torch_render(sd, wp)
            got, lat, t_isf = run_isfgan(isfgan, path, codes.numpy(), space, workdir,
                                         f"{size}-{space}", threads)
            if got.shape != ref.shape:
                print(f"   {space}: isfgan image shape {got.shape}, torch {ref.shape}")
                ok = False
                continue
            diff = float(np.abs(got - ref).max())
            tol = tolerance(ref)
            good = diff <= tol
            note = ""
            if space == "z":  # the W+ isfgan used must be the mapped w, repeated
                dl = float(np.abs(lat - wp.numpy()).max())
                tl = tolerance(wp.numpy())
                good &= dl <= tl
                note = f"w diff {dl:.2e} (tol {tl:.1e})"
            if f64:
                ref64, _ = torch_render(cast(sd, torch.float64), wp.double())
                d32 = float(np.abs(ref - ref64).max())
                d64 = float(np.abs(got - ref64).max())
                note += f"{'; ' if note else ''}vs float64: torch {d32:.2e}, isfgan {d64:.2e}"
            rows.append((size, space, got.shape[0], float(np.abs(ref).max()), diff, tol,
                         good, t_img, t_isf, note))
            ok &= good
            if not good and space == "wplus":
                per_resolution(isfgan, sd, wplus, workdir, size, threads)
        del sd
    print()
    head = ("size", "input", "images", "max|ref|", "max abs diff", "tolerance", "result",
            "torch s/img", "isfgan s")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for size, space, n, mref, diff, tol, good, t_img, t_isf, _ in rows:
        print(f"| {size} | {space} | {n} | {mref:.4f} | {diff:.3e} | {tol:.2e} | "
              f"{'pass' if good else 'FAIL'} | {t_img:.2f} | {t_isf:.2f} |")
    for size, space, *_, note in rows:
        if note:
            print(f"{size} px {space}: {note}")
    print("(isfgan s = wall time of the whole `isfgan generate` run: load, render, write)")
    return ok


def find_isfgan(arg):
    for cand in (arg, os.environ.get("ISFGAN"),
                 os.path.join(os.path.dirname(__file__), "..", ".build", "release", "isfgan"),
                 shutil.which("isfgan")):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return os.path.abspath(cand)
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--isfgan", help="the isfgan binary")
    ap.add_argument("--fixtures", help="the shared fixtures folder")
    ap.add_argument("--workdir", help="where to write checkpoints (default: a temp folder, "
                    "removed afterwards)")
    ap.add_argument("--sizes", default="256,1024", help="config-f sizes (default 256,1024)")
    ap.add_argument("--threads", type=int, default=1, help="torch and isfgan threads")
    ap.add_argument("--seed", type=int, default=4000)
    ap.add_argument("--skip-z", action="store_true", help="only W+ codes (skip the z rows)")
    ap.add_argument("--f64", action="store_true",
                    help="also compare both against a float64 torch pass")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    isfgan = find_isfgan(args.isfgan)
    if isfgan is None:
        print("no isfgan binary (give --isfgan, set ISFGAN or build .build/release/isfgan)")
        return 1
    fixtures = args.fixtures or os.environ.get("ISFGAN_FIXTURES") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "fixtures")
    if not os.path.isdir(os.path.join(fixtures, "stylegan2-tiny")):
        print(f"fixtures not found at {fixtures} (give --fixtures or set ISFGAN_FIXTURES)")
        return 1
    print(f"torch {torch.__version__}, numpy {np.__version__}, {args.threads} thread(s); "
          f"isfgan {isfgan}")

    ok = check_fixtures(fixtures)
    if not ok:
        print("the PyTorch implementation does not reproduce the fixtures; stopping")
        return 1

    sizes = [int(s) for s in args.sizes.split(",") if s]
    workdir = args.workdir or tempfile.mkdtemp(prefix="isfgan-config-f-")
    os.makedirs(workdir, exist_ok=True)
    try:
        ok = check_config_f(isfgan, sizes, workdir, args.threads, args.seed,
                            not args.skip_z, args.f64)
    except (RuntimeError, OSError) as e:
        print(f"failed: {e}")
        ok = False
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print("\nall checks passed" if ok else "\nsome checks FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
