"""The knowledge base: versioned data files, their schema and the loader that compiles them."""

from hipdx.knowledge.base import (
    CompiledVariable,
    KnowledgeBase,
    default_data_dir,
    load_course_knowledge,
    load_knowledge_base,
    load_treatment_knowledge,
)

__all__ = [
    "CompiledVariable",
    "KnowledgeBase",
    "default_data_dir",
    "load_course_knowledge",
    "load_knowledge_base",
    "load_treatment_knowledge",
]
