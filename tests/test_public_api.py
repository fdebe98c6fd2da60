"""The public surface of hipdx is small, explicit and sorted; changing it is a reviewed decision."""

import hipdx

EXPECTED = [
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


def test_public_api_is_pinned_and_sorted() -> None:
    assert hipdx.__all__ == EXPECTED
    assert hipdx.__all__ == sorted(hipdx.__all__)
    for name in hipdx.__all__:
        assert hasattr(hipdx, name), name


def test_every_error_maps_to_an_exit_code_and_an_http_status() -> None:
    for error in (hipdx.InputError, hipdx.KnowledgeBaseError, hipdx.ImagingError, hipdx.IntegrationError):
        assert issubclass(error, hipdx.HipdxError)
        assert error.exit_code != 0 and 400 <= error.http_status < 600
