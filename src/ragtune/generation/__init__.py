"""Model backends that write answers: local SmolLM2 (transformers or llama.cpp), Hugging Face folders with LoRA
adapters, and any OpenAI-compatible endpoint."""

from ragtune.generation.base import Generation, Generator, Message, make_generator, register_generator

__all__ = ["Generation", "Generator", "Message", "make_generator", "register_generator"]
