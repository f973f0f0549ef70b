"""Peer: a plain FastAPI + PyTorch server of the MiniLM sentiment model (what DeepServe's int8 ONNX is compared to).

    MINILM_HF=models/minilm/1/hf uvicorn bench.peers.pytorch_sentiment:app

One request, one forward pass (no batching, no ONNX), the same JSON route and answer shape as DeepServe's
POST /predict/sentiment. The fine-tuned PyTorch weights (hf/model.safetensors) are not committed: without them
the model is built from hf/config.json with random weights, which runs at the same speed (same shapes and
operations); `MINILM_HF` may point at a folder that has them.
"""

import os
from pathlib import Path

import torch
from fastapi import FastAPI
from pydantic import BaseModel
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

folder = Path(os.environ["MINILM_HF"])
tokenizer = AutoTokenizer.from_pretrained(folder)
if (folder / "model.safetensors").exists():
    model = AutoModelForSequenceClassification.from_pretrained(folder)
else:
    model = AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(folder))
model.eval()
app = FastAPI()


class Review(BaseModel):
    text: str
    model: str | None = None


@app.get("/health")
def health() -> dict:
    return {"status": "ok"}


@app.post("/predict/sentiment")
def predict(review: Review) -> dict:
    inputs = tokenizer(review.text, truncation=True, max_length=512, return_tensors="pt")
    with torch.inference_mode():
        p = torch.softmax(model(**inputs).logits, dim=-1)[0]
    label = "POSITIVE" if p[1] >= p[0] else "NEGATIVE"
    return {"results": [{"label": label, "score": float(p[1]), "truncated": False}]}
