"""Golden values for seek's AdamW: PyTorch's torch.optim.AdamW on fixed parameters and gradients.

Run: /usr/bin/python3 scripts/reference/adamw_golden.py > tests/data/train/adamw_golden.json
Writes the initial parameters, the gradient of each step, the hyperparameters and the parameters after
every step (float64 to JSON). Independent of the C++: PyTorch's own optimizer.
"""
import json

import torch

torch.manual_seed(0)
n, steps = 12, 5
p0 = torch.randn(n, dtype=torch.float32)
grads = [torch.randn(n, dtype=torch.float32) * (0.1 + i) for i in range(steps)]
hp = dict(lr=0.05, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
p = torch.nn.Parameter(p0.clone())
opt = torch.optim.AdamW([p], **hp)
after = []
for g in grads:
    p.grad = g.clone()
    opt.step()
    after.append([float(x) for x in p.detach()])
print(json.dumps({"torch": torch.__version__, "p0": [float(x) for x in p0], "grads": [[float(x) for x in g] for g in grads],
                  "lr": hp["lr"], "beta1": hp["betas"][0], "beta2": hp["betas"][1], "eps": hp["eps"],
                  "weight_decay": hp["weight_decay"], "after": after}, indent=1))
