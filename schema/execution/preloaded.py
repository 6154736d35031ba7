"""Fields whose values a list resolver hands to the items it returns.

A board column's resolver loads the assignees, labels and counts of all its tasks at once
and gives each task its own (resolvers/loaders.py `preload`). The compiled executor reads
those values instead of calling the field's resolver, which would look up the same objects
in the request's loaders; an item without a handed value (a task reached another way) goes
through the resolver as before. Keyed by GraphQL type and field name.
"""

from __future__ import annotations

from resolvers.loaders import PRELOADED

FIELDS: dict[tuple[str, str], str] = {
    ("Task", "assignee"): PRELOADED + "assignee",
    ("Task", "createdBy"): PRELOADED + "created_by",
    ("Task", "labels"): PRELOADED + "labels",
    ("Task", "commentCount"): PRELOADED + "comment_count",
    ("Task", "subtaskCount"): PRELOADED + "subtask_count",
}
