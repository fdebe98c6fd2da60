"""The knowledge base: versioned data files, their schema and the loader that compiles them."""

from hipdx.knowledge.base import CompiledVariable, KnowledgeBase, default_data_dir, load_knowledge_base

__all__ = ["CompiledVariable", "KnowledgeBase", "default_data_dir", "load_knowledge_base"]
