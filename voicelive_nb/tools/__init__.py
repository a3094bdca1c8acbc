"""Python functions as Voice Live tools: the schema from the signature, validated calls, the call loop.

::

    def row_count(column: str, missing: bool = False) -> int:
        '''Count rows of the loaded table.

        Args:
            column: the column to look at.
            missing: count only rows where the column is empty.
        '''
        ...

    tool = as_tool(row_count)          # name, description and JSON schema from the function
    tool.definition()                  # {"type": "function", "name": "row_count", ...}

:class:`ToolRunner` answers the service's ``function_call`` items with ``function_call_output``
items and a ``response.create``; see :mod:`voicelive_nb.tools.runner`.
"""

from __future__ import annotations

from .runner import ToolCall, ToolRunner, format_output, tool_calls_table
from .schema import Tool, ToolArgumentsError, as_tool, tool

__all__ = [
    "Tool",
    "ToolArgumentsError",
    "ToolCall",
    "ToolRunner",
    "as_tool",
    "format_output",
    "tool",
    "tool_calls_table",
]
