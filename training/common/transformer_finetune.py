"""Fine-tuning a PyTorch sequence classifier on pre-tokenised texts: AdamW, linear warm-up and decay, length-grouped
batches under a token budget (so a batch of short phrases is wide and a batch of long reviews is narrow)."""

from __future__ import annotations

import time

import numpy as np


def length_batches(lengths: np.ndarray, max_texts: int, max_tokens: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Row indices in batches of similar length, each at most max_texts texts and max_tokens padded tokens, in a
    random order. Texts are shuffled, sorted by length within pools of 50 batches, then cut into batches."""
    order = rng.permutation(len(lengths))
    batches: list[np.ndarray] = []
    pool = 50 * max_texts
    for start in range(0, len(order), pool):
        rows = order[start : start + pool]
        rows = rows[np.argsort(lengths[rows], kind="stable")]
        batch: list[int] = []
        for i in rows:
            if batch and (len(batch) + 1) * int(lengths[i]) > max_tokens or len(batch) == max_texts:
                batches.append(np.array(batch))
                batch = []
            batch.append(int(i))
        if batch:
            batches.append(np.array(batch))
    return [batches[i] for i in rng.permutation(len(batches))]


def finetune(
    model, ids: np.ndarray, mask: np.ndarray, labels: np.ndarray, *, epochs: int, max_texts: int, max_tokens: int,
    learning_rate: float, seed: int,
) -> list[float]:  # fmt: skip
    """Train `model` in place on padded ids/mask (rows trimmed to each batch's longest text). Returns the mean loss
    of each epoch."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    lengths = mask.sum(axis=1)
    plans = [length_batches(lengths, max_texts, max_tokens, rng) for _ in range(epochs)]
    steps = sum(map(len, plans))
    warmup = max(1, steps // 10)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup)))
    )
    losses, step, started = [], 0, time.time()
    model.train()
    for epoch, plan in enumerate(plans):
        total = 0.0
        for rows in plan:
            width = int(lengths[rows].max())
            batch = {
                "input_ids": torch.from_numpy(ids[rows, :width]),
                "attention_mask": torch.from_numpy(mask[rows, :width]),
            }
            loss = model(**batch, labels=torch.from_numpy(labels[rows])).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            total += loss.item() * len(rows)
            step += 1
            if step % 50 == 0 or step == steps:
                eta = (time.time() - started) / step * (steps - step)
                print(
                    f"epoch {epoch + 1} step {step}/{steps}: loss {loss.item():.4f}, {eta / 60:.1f} min left",
                    flush=True,
                )
        losses.append(total / len(labels))
    model.eval()
    return losses
