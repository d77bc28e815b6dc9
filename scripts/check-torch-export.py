#!/usr/bin/env python3
"""Shows that PyTorch reads what `isfgan export --format torch` writes.

usage: scripts/check-torch-export.py FILE.ckpt [FILE.ckpt ...]

Loads each file with torch.load(weights_only=True) (the safe loader, which accepts only
allow-listed globals), prints its entries with key counts and parameter counts, and checks
that every value is a float32 tensor. It needs only torch (binding the state dicts into
the official MappingNetwork / Discriminator is a plain load_state_dict on top of this).
Exits 0 when every file loads, 1 when one does not, 77 (skipped) without torch.
"""
import sys


def main(paths):
    try:
        import torch
    except ImportError:
        print("torch is not importable here; skipping (exit 77)")
        return 77
    if not paths:
        print(__doc__)
        return 2
    failed = False
    for path in paths:
        try:
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True)
            except TypeError:  # torch < 1.13 has no weights_only
                obj = torch.load(path, map_location="cpu")
        except Exception as e:  # noqa: BLE001 - report any loader failure
            print(f"{path}: torch.load failed: {e}")
            failed = True
            continue
        if not isinstance(obj, dict):
            print(f"{path}: top level is {type(obj).__name__}, expected a dict")
            failed = True
            continue
        print(f"{path}: torch {torch.__version__} loaded {sorted(obj)}")
        for name, sd in obj.items():
            bad = [k for k, v in sd.items()
                   if not (torch.is_tensor(v) and v.dtype == torch.float32)]
            n = sum(v.numel() for v in sd.values() if torch.is_tensor(v))
            print(f"  {name}: {type(sd).__name__}, {len(sd)} tensors, {n} values")
            if bad:
                print(f"  {name}: not float32 tensors: {bad[:5]}")
                failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
