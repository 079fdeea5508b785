"""Read YAML the way a config file must be read: bounded, strict, with the line of every value.

A config is written by people and sometimes by tools gone wrong, so reading it
never trusts its size or shape: only regular files are opened (a `/dev/zero`
or a FIFO in an `include:` glob is refused, not read forever), at most
`MAX_BYTES` of them; the text must be UTF-8 (a bad byte is reported with its
line); a key given twice in one mapping is an error naming both lines (YAML
would silently keep the last); nesting is capped at `MAX_DEPTH`, a recursive
alias (`x: &a [*a]`) is refused and aliases may not expand the document
beyond a budget (the "billion laughs"). Every failure is a `YamlProblem` with
a file and line: the config loader turns them into its own errors.
"""

from __future__ import annotations

import functools
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

#: larger config files are refused (the biggest real configs are a few hundred KiB)
MAX_BYTES = 8 * 1024 * 1024
#: deeper nesting is refused (a config's deepest part, a routing tree, rarely passes 20)
MAX_DEPTH = 100
#: nodes reached again through aliases: at most ALIAS_RATIO times the distinct nodes, at
#: least ALIAS_FLOOR and never more than ALIAS_CEILING (a few KiB of "laughs" reach 10^9)
ALIAS_FLOOR, ALIAS_RATIO, ALIAS_CEILING = 100_000, 10, 2_000_000
_MERGE_TAG = "tag:yaml.org,2002:merge"

Path_ = tuple[Any, ...]

#: libyaml's parser when PyYAML was built with it: ~10x faster on large configs
_BASE: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class YamlProblem:
    """One problem in a file: where (`path` of keys/indices when known, 1-based `line`) and what."""

    file: str
    message: str
    line: int | None = None
    path: Path_ = ()


class YamlFileError(Exception):
    """The file cannot be used at all (unreadable, not YAML, too big...)."""

    def __init__(self, problem: YamlProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem


@dataclass
class Marks:
    """Path (tuple of keys/indices) -> 1-based line.

    A valid config never needs its lines, and recording one for every path of
    10,000 checks costs more than reading them, so the fast loader passes
    `later`: the lines are read from the text on the first `line_for`.
    """

    lines: dict[Path_, int] = field(default_factory=dict)
    later: Callable[[], dict[Path_, int]] | None = None

    def line_for(self, path: Path_) -> int | None:
        if self.later is not None:
            self.lines, self.later = self.later(), None
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.lines.get(())


@dataclass
class Document:
    data: Any
    marks: Marks


def read_text(path: Path) -> str:
    """The file's text: a regular file of at most `MAX_BYTES`, in UTF-8."""
    where = str(path)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise YamlFileError(YamlProblem(where, f"cannot read config: {_not_regular(os.stat(path).st_mode)}"))
        # O_NONBLOCK: a FIFO swapped in after the stat must not block the open.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise YamlFileError(YamlProblem(where, f"cannot read config: {_not_regular(mode)}"))
            raw = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise YamlFileError(YamlProblem(where, f"cannot read config: {exc.strerror or exc}")) from None
    except ValueError as exc:  # e.g. a NUL byte in the path
        raise YamlFileError(YamlProblem(where, f"cannot read config: invalid path ({exc})")) from None
    if len(raw) > MAX_BYTES:
        raise YamlFileError(YamlProblem(where, f"config file is larger than {MAX_BYTES // (1024 * 1024)} MiB; "
                                               "split it with include:"))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise YamlFileError(YamlProblem(where, f"not valid UTF-8: byte 0x{raw[exc.start]:02x} at column {column}; "
                                               "save the file as UTF-8", line)) from None


def _not_regular(mode: int) -> str:
    kinds = [(stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")]
    kind = next((name for test, name in kinds if test(mode)), "not a regular file")
    return f"{kind}, not a regular file" if kind != "not a regular file" else kind


class _Loader(_BASE):  # type: ignore[misc]
    """The safe loader, with value errors (`2001-02-30`, `!!int x`) reported as YAML errors with a line."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, KeyError, OverflowError) as exc:
            shown = f" {node.value[:60]!r}" if isinstance(node, yaml.ScalarNode) else ""
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read the value{shown} as {node.tag.rsplit(':', 1)[-1]} ({exc})", node.start_mark,
            ) from None


def _yaml_error(where: str, exc: yaml.YAMLError) -> YamlFileError:
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark else None
    problem = getattr(exc, "problem", None) or str(exc)
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and context_mark is not None:
        problem += f" ({context} at line {context_mark.line + 1})"
    return YamlFileError(YamlProblem(where, f"invalid YAML: {problem}", line))


def load(path: Path) -> tuple[list[Document], list[YamlProblem]]:
    """Every document of the file, and the problems that do not stop reading it (duplicate keys).

    Raises `YamlFileError` when the file cannot be used at all.
    """
    where = str(path)
    text = read_text(path)
    try:
        datas, problems = _EventReader(text, where).read()
    except _Unusual:  # merge keys, tags on collections, collections as keys: PyYAML's composer and constructor
        return _load_composed(text, where)
    return [Document(data, Marks(later=functools.partial(_lines_of, text, where, i)))
            for i, data in enumerate(datas)], problems


def _load_composed(text: str, where: str) -> tuple[list[Document], list[YamlProblem]]:
    loader = _Loader(text)
    nodes: list[yaml.Node] = []
    try:
        while loader.check_node():
            nodes.append(loader.get_node())
    except yaml.YAMLError as exc:
        raise _yaml_error(where, exc) from None
    finally:
        loader.dispose()
    problems: list[YamlProblem] = []
    docs = []
    for node in nodes:
        marks = _walk(node, where, problems)
        constructor = _Loader("")
        try:
            data = constructor.construct_document(node)
        except yaml.YAMLError as exc:
            raise _yaml_error(where, exc) from None
        except RecursionError:
            raise YamlFileError(YamlProblem(where, "invalid YAML: nested too deeply", node.start_mark.line + 1)) from None
        finally:
            constructor.dispose()
        docs.append(Document(data, marks))
    return docs, problems


def _walk(root: yaml.Node, where: str, problems: list[YamlProblem]) -> Marks:
    """Lines of every path, duplicate keys, and the depth / alias limits (iterative: no recursion)."""
    marks = Marks()
    seen: set[int] = set()
    on_path: set[int] = set()
    expanded = 0
    stack: list[tuple[yaml.Node, Path_, int, bool]] = [(root, (), 0, False)]
    while stack:
        node, path, depth, leaving = stack.pop()
        if leaving:
            on_path.discard(id(node))
            continue
        line = node.start_mark.line + 1
        if id(node) in on_path:
            raise YamlFileError(YamlProblem(where, "invalid YAML: a recursive alias (an anchor used inside itself)",
                                            line, path))
        if depth > MAX_DEPTH:
            raise YamlFileError(YamlProblem(where, f"invalid YAML: nested deeper than {MAX_DEPTH} levels", line, path))
        first = id(node) not in seen
        if first:
            seen.add(id(node))
        else:
            expanded += 1
            if expanded > min(ALIAS_CEILING, max(ALIAS_FLOOR, ALIAS_RATIO * len(seen))):
                raise YamlFileError(YamlProblem(
                    where, f"invalid YAML: aliases expand the document to more than {expanded} nodes "
                           "(an alias bomb?); write the repeated parts out or reuse them less", line, path))
        marks.lines.setdefault(path, line)
        if isinstance(node, yaml.MappingNode):
            stack.append((node, path, depth, True))
            on_path.add(id(node))
            keys: dict[tuple[str, str], int] = {}
            children = []
            for key, value in node.value:
                k = key.value if isinstance(key, yaml.ScalarNode) else None
                if k is None:
                    children.append((value, (*path, "<key>"), depth + 1, False))
                    continue
                key_line = key.start_mark.line + 1
                if first and key.tag != _MERGE_TAG:
                    ident = (key.tag, k)
                    if ident in keys:
                        problems.append(YamlProblem(where, f"duplicate key {k!r}: also given at line {keys[ident]}; "
                                                           "a key may appear once in a mapping", key_line, (*path, k)))
                    else:
                        keys[ident] = key_line
                marks.lines[(*path, k)] = key_line
                children.append((value, (*path, k), depth + 1, False))
            stack.extend(reversed(children))
        elif isinstance(node, yaml.SequenceNode):
            stack.append((node, path, depth, True))
            on_path.add(id(node))
            stack.extend(reversed([(item, (*path, i), depth + 1, False) for i, item in enumerate(node.value)]))
    return marks


def _lines_of(text: str, where: str, index: int) -> dict[Path_, int]:
    """The lines of document `index`, from PyYAML's node tree (only when an error needs one)."""
    loader = _Loader(text)
    try:
        n = 0
        while loader.check_node():
            node = loader.get_node()
            if n == index:
                return _walk(node, where, []).lines
            n += 1
        return {}
    except (yaml.YAMLError, YamlFileError):
        return {}
    finally:
        loader.dispose()


class _Unusual(Exception):
    """A construct `_EventReader` leaves to PyYAML's composer and constructor (same data, slower)."""


_STR, _MAP, _SEQ = "tag:yaml.org,2002:str", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_SPECIAL_KEYS = (_MERGE_TAG, "tag:yaml.org,2002:value")
_MISSING: Any = object()


class _Open:
    """A mapping or sequence being read: its value, path, size and height (aliases included)."""

    __slots__ = ("value", "path", "anchor", "size", "height", "key", "key_text", "key_lines")

    def __init__(self, value: Any, path: Path_, anchor: str | None) -> None:
        self.value, self.path, self.anchor = value, path, anchor
        self.size, self.height = 1, 0
        self.key: Any = _MISSING  # a mapping's key waiting for its value
        self.key_text = ""
        self.key_lines: dict[Any, int] | None = {} if isinstance(value, dict) else None

    def child_path(self) -> Path_:
        return (*self.path, self.key_text) if self.key_lines is not None else (*self.path, len(self.value))


class _EventReader:
    """Builds the data straight from libyaml's events, with the same checks and results as `_walk`.

    PyYAML's composer builds a node (with two marks) for every scalar and its
    resolver runs Python regexes on each: 10,000 checks took 3.4 s. Here a
    plain scalar is resolved and constructed once per distinct text (the same
    object is shared, as immutable as before), duplicate keys, depth and
    aliases are checked as the events pass, and no line is kept (`Marks.later`).
    What this reader does not handle (`_Unusual`) goes to the composer.
    """

    def __init__(self, text: str, where: str) -> None:
        self.text, self.where = text, where
        self._constructor = _Loader("")
        self._plains: dict[str, Any] = {}
        self._quoted: dict[str, str] = {}  # a JSON config quotes every key: "name" once, not once per check
        self._anchor_marks: dict[str, Any] = {}

    def read(self) -> tuple[list[Any], list[YamlProblem]]:
        parser = _BASE(self.text)
        try:
            return self._events(parser.get_event)
        except yaml.YAMLError as exc:
            raise _yaml_error(self.where, exc) from None
        finally:
            parser.dispose()
            self._constructor.dispose()

    def _events(self, next_event: Callable[[], Any]) -> tuple[list[Any], list[YamlProblem]]:
        docs: list[Any] = []
        problems: list[YamlProblem] = []
        stack: list[_Open] = []
        anchors: dict[str, tuple[Any, int, int]] = {}
        building: dict[str, _Open] = {}
        seen = expanded = 0
        root: Any = None
        events = yaml.events
        scalar_event, plain = events.ScalarEvent, self._plains
        while True:
            ev = next_event()
            kind = type(ev)
            if kind is scalar_event:
                seen += 1
                if len(stack) > MAX_DEPTH:
                    self._too_deep(stack, ev)
                if (ev.tag is None or ev.tag == "!") and ev.implicit[0]:  # plain: resolved once per text
                    value = plain.get(ev.value, _MISSING)
                    if value is _MISSING:
                        value = self._plain(ev)
                else:
                    value = self._scalar(ev)
                size, height = 1, 0
                if ev.anchor is not None:
                    self._anchor(ev, anchors, building)
                    anchors[ev.anchor] = (value, 1, 0)
            elif kind is events.MappingStartEvent or kind is events.SequenceStartEvent:
                seen += 1
                is_map = kind is events.MappingStartEvent
                if ev.tag not in (None, "!", _MAP if is_map else _SEQ) or (stack and stack[-1].key is _MISSING
                                                                         and stack[-1].key_lines is not None):
                    raise _Unusual
                if len(stack) > MAX_DEPTH:
                    self._too_deep(stack, ev)
                path = stack[-1].child_path() if stack else ()
                frame = _Open({} if is_map else [], path, ev.anchor)
                if ev.anchor is not None:
                    self._anchor(ev, anchors, building)
                    building[ev.anchor] = frame
                stack.append(frame)
                continue
            elif kind is events.MappingEndEvent or kind is events.SequenceEndEvent:
                frame = stack.pop()
                value, size, height = frame.value, frame.size, frame.height
                if frame.anchor is not None:
                    del building[frame.anchor]
                    anchors[frame.anchor] = (value, size, height)
            elif kind is events.AliasEvent:
                line = ev.start_mark.line + 1
                if ev.anchor in building:
                    path = stack[-1].child_path() if stack else ()
                    raise YamlFileError(YamlProblem(
                        self.where, "invalid YAML: a recursive alias (an anchor used inside itself)", line, path))
                if ev.anchor not in anchors:
                    raise yaml.composer.ComposerError(None, None, "found undefined alias", ev.start_mark)
                value, size, height = anchors[ev.anchor]
                if len(stack) + height > MAX_DEPTH:
                    self._too_deep(stack, ev)
                expanded += size
                if expanded > min(ALIAS_CEILING, max(ALIAS_FLOOR, ALIAS_RATIO * seen)):
                    path = stack[-1].child_path() if stack else ()
                    raise YamlFileError(YamlProblem(
                        self.where, f"invalid YAML: aliases expand the document to more than {expanded} nodes "
                                    "(an alias bomb?); write the repeated parts out or reuse them less", line, path))
            elif kind is events.DocumentStartEvent:
                root, anchors, seen, expanded = None, {}, 0, 0
                self._anchor_marks = {}
                continue
            elif kind is events.DocumentEndEvent:
                docs.append(root)
                continue
            elif kind is events.StreamEndEvent:
                return docs, problems
            else:  # StreamStartEvent
                continue
            if not stack:
                root = value
                continue
            top = stack[-1]
            top.size += size
            if height >= top.height:
                top.height = height + 1
            if top.key_lines is None:
                top.value.append(value)
            elif top.key is _MISSING:
                if kind is not events.ScalarEvent and isinstance(value, (dict, list)):
                    raise _Unusual  # an alias to a collection as a key
                top.key, top.key_text = value, ev.value if kind is scalar_event else str(value)
                line = ev.start_mark.line + 1
                first = top.key_lines.setdefault(value, line)
                if first != line or value in top.value:
                    problems.append(YamlProblem(self.where, f"duplicate key {top.key_text!r}: also given at line "
                                                            f"{first}; a key may appear once in a mapping", line,
                                                (*top.path, top.key_text)))
            else:
                top.value[top.key] = value
                top.key = _MISSING

    def _plain(self, ev: Any) -> Any:
        """A plain scalar's value (and kept for the next with the same text)."""
        tag = self._constructor.resolve(yaml.ScalarNode, ev.value, ev.implicit)
        if tag in _SPECIAL_KEYS:
            raise _Unusual  # `<<` merges (and `=`): PyYAML's constructor does those
        value = self._plains[ev.value] = ev.value if tag == _STR else self._construct(tag, ev)
        return value

    def _scalar(self, ev: Any) -> Any:
        """A quoted or tagged scalar's value (equal quoted texts share one string, as plain ones do)."""
        if ev.tag is None or ev.tag == "!" or ev.tag == _STR:
            return self._quoted.setdefault(ev.value, ev.value)
        return self._construct(ev.tag, ev)

    def _construct(self, tag: str, ev: Any) -> Any:
        node = yaml.ScalarNode(tag, ev.value, ev.start_mark, ev.end_mark, style=ev.style)
        try:
            return self._constructor.construct_object(node, deep=True)
        finally:
            self._constructor.constructed_objects.pop(node, None)

    def _anchor(self, ev: Any, anchors: dict[str, Any], building: dict[str, _Open]) -> None:
        first = self._anchor_marks.setdefault(ev.anchor, ev.start_mark)
        if ev.anchor in anchors or ev.anchor in building:
            raise yaml.composer.ComposerError("found duplicate anchor; first occurrence", first,
                                              "second occurrence", ev.start_mark)

    def _too_deep(self, stack: list[_Open], ev: Any) -> None:
        path = stack[-1].child_path() if stack else ()
        raise YamlFileError(YamlProblem(self.where, f"invalid YAML: nested deeper than {MAX_DEPTH} levels",
                                        ev.start_mark.line + 1, path))
