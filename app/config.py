"""One Settings object for the whole service; every field is an environment variable with the DEEPSERVE_ prefix."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEEPSERVE_", env_file=".env", extra="ignore")

    models_dir: Path = Field(Path("models"), description="Folder holding manifest.json and the artifacts.")
    models: Annotated[list[str] | None, NoDecode] = Field(
        None,
        description="Comma-separated model names this deployment must serve; readiness waits for all of them. "
        "Default: every model in the manifest.",
    )
    max_upload_bytes: int = Field(4 * 1024 * 1024, gt=0, description="Largest request body accepted (413 above).")
    max_image_pixels: int = Field(4096 * 4096, gt=0, description="Largest decoded image, width x height (413).")
    max_concurrent_requests: int = Field(
        64, gt=0, description="Predictions in flight before new ones get 429 at once instead of queueing."
    )
    inference_threads: int = Field(0, ge=0, description="Threads per ONNX Runtime session; 0 lets it choose.")
    log_level: str = "INFO"

    @field_validator("models", mode="before")
    @classmethod
    def split_names(cls, value: object) -> object:
        if isinstance(value, str):
            names = [name.strip() for name in value.split(",") if name.strip()]
            return names or None
        return value
