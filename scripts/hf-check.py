#!/usr/bin/env python3
"""Loads a directory written by `ropelab export hf` with Hugging Face
transformers and compares its logits with ropelab's own (ropelab_reference.json,
written at export). Exit 0 when the largest difference is within 1e-3 of the
largest logit. Needs torch and transformers (the GPU machine has both).

    python3 scripts/hf-check.py EXPORT_DIR
"""
import json
import sys

import torch
from transformers import AutoModelForCausalLM

d = sys.argv[1]
ref = json.load(open(f"{d}/ropelab_reference.json"))
model = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32, attn_implementation="eager").eval()
with torch.no_grad():
    got = model(torch.tensor([ref["input_ids"]])).logits[0].double()
want = torch.tensor(ref["logits"], dtype=torch.float64)
rel = ((got - want).abs().max() / want.abs().max()).item()
print(f"{type(model).__name__}: max |transformers - ropelab| / max |ropelab| = {rel:.2e} over {tuple(want.shape)} logits")
sys.exit(0 if rel <= 1e-3 else 1)
