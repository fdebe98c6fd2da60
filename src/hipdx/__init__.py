"""hipdx: open clinical decision support for atraumatic hip pain with bone marrow edema.

hipdx supports a clinician's decision; it never replaces one.
"""

from hipdx._version import __version__
from hipdx.case import Case, parse_case  # noqa: E402
from hipdx.errors import HipdxError, ImagingError, InputError, IntegrationError, KnowledgeBaseError  # noqa: E402
from hipdx.knowledge import KnowledgeBase, load_knowledge_base  # noqa: E402
from hipdx.reasoning import Assessment, assess  # noqa: E402
from hipdx.reasoning.batch import BatchResult, assess_batch, assess_batch_json  # noqa: E402
from hipdx.reasoning.course import CourseReport, compare_course  # noqa: E402

__all__ = [
    "Assessment",
    "BatchResult",
    "Case",
    "CourseReport",
    "HipdxError",
    "ImagingError",
    "InputError",
    "IntegrationError",
    "KnowledgeBase",
    "KnowledgeBaseError",
    "__version__",
    "assess",
    "assess_batch",
    "assess_batch_json",
    "compare_course",
    "load_knowledge_base",
    "parse_case",
]
