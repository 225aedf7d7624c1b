"""Replay a Dockerfile's stages on this machine, without a Docker engine.

Every absolute path of the image is moved under one folder (`root`): `/opt/venv` is
`root/opt/venv`, `/app` is `root/app`. ENV, WORKDIR and COPY are applied as Docker
does (COPY from the build context that `.dockerignore` leaves, or from an earlier
stage); RUN lines run verbatim through `/bin/sh -c` with the stage's environment.
So the install commands tested are the Dockerfile's own, character for character;
the one difference is the base image's Python, which is this interpreter (a test
checks that their versions agree).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

# A RUN that names an absolute path would escape the relocation; use variables.
_ABSOLUTE_PATH = re.compile(r"(?<![\w$}./-])/[A-Za-z]")
_NEVER_SENT = (".git", ".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis")
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [i.arguments for i in self.instructions if i.keyword == keyword]


def parse(dockerfile: Path) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults, and the stages in order (FROM ... AS name)."""
    text = re.sub(r"\\\n", " ", "\n".join(_without_comments(dockerfile.read_text())))
    arguments: dict[str, str] = {}
    stages: list[Stage] = []
    for line in filter(None, (line.strip() for line in text.splitlines())):
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            image, _, name = rest.partition(" AS ")
            base = _substitute(image.strip(), arguments)
            stages.append(Stage(name.strip() or str(len(stages)), base))
        elif not stages and keyword == "ARG":
            key, _, value = rest.partition("=")
            arguments[key] = value
        elif stages:
            stages[-1].instructions.append(Instruction(keyword, rest))
    return arguments, stages


def _without_comments(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.lstrip().startswith("#")]


def _substitute(text: str, variables: dict[str, str]) -> str:
    return _VARIABLE.sub(lambda m: variables.get(m.group(1) or m.group(2), ""), text)


def context_files(repo: Path) -> set[str]:
    """Paths (relative, '/'-separated) that `docker build` would send, per .dockerignore."""
    rules = []
    for raw in (repo / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if pattern and not pattern.startswith("#"):
            negate = pattern.startswith("!")
            rules.append((negate, _pattern(pattern.lstrip("!").strip("/"))))
    files = set()
    for folder, subfolders, names in os.walk(repo):
        # Tool and VCS folders are big and never sent (the file is an allow-list).
        subfolders[:] = [d for d in subfolders if not d.startswith(_NEVER_SENT)]
        for name in names:
            relative = (Path(folder) / name).relative_to(repo).as_posix()
            included = True
            for negate, rule in rules:  # the last matching rule wins
                if rule.fullmatch(relative):
                    included = negate
            if included:
                files.add(relative)
    return files


def _pattern(glob: str) -> re.Pattern[str]:
    # Docker's rules: `*` stays within a path segment, `**` spans any number of them,
    # and a pattern that matches a folder matches everything in it.
    regex = ""
    for part in re.split(r"(\*\*/?|\*|\?)", glob):
        if part.startswith("**"):
            regex += "(?:.*/)?" if part.endswith("/") else ".*"
        elif part == "*":
            regex += "[^/]*"
        elif part == "?":
            regex += "[^/]"
        else:
            regex += re.escape(part)
    return re.compile(regex + "(?:/.*)?")


@dataclass
class Image:
    """The state a replayed stage ends in."""

    env: dict[str, str]
    workdir: Path
    user: str | None = None
    cmd: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)
    exposed: list[str] = field(default_factory=list)


class Replay:
    def __init__(self, repo: Path, root: Path) -> None:
        self.repo = repo
        self.root = root
        self.context = context_files(repo)
        self.arguments, self.stages = parse(repo / "Dockerfile")
        # The base image's `python` (python:3.x images put it first on PATH).
        self.base_bin = root / "usr" / "local" / "bin"
        self.base_bin.mkdir(parents=True)
        base_python = Path(getattr(sys, "_base_executable", sys.executable))
        for name in ("python", "python3"):
            (self.base_bin / name).symlink_to(base_python)

    def stage(self, name: str) -> Stage:
        return next(stage for stage in self.stages if stage.name == name)

    def relocate(self, path: str, workdir: Path | None = None) -> Path:
        if path.startswith("/"):
            return self.root / path.lstrip("/")
        return (workdir or self.root) / path

    def base_environment(self) -> dict[str, str]:
        # The machine's own settings (proxies, certificates, pip's index) stay: a real
        # build would use them too. What would leak this checkout into the image goes.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DIGITS_", "PYTHON", "VIRTUAL_ENV", "PYTEST", "COV_"))
        }
        env["PATH"] = f"{self.base_bin}:{env.get('PATH', '/usr/bin:/bin')}"
        return env

    def run(self, name: str, *, allow_run: bool = True) -> Image:
        """Replay stage `name`; with `allow_run=False`, a RUN line is an error."""
        image = Image(env=self.base_environment(), workdir=self.root)
        for instruction in self.stage(name).instructions:
            self._apply(instruction, image, allow_run)
        return image

    def _apply(self, instruction: Instruction, image: Image, allow_run: bool) -> None:
        keyword, arguments = instruction.keyword, instruction.arguments
        if keyword == "ENV":
            for pair in shlex.split(_substitute(arguments, image.env)):
                key, _, value = pair.partition("=")
                if value.startswith("/") and not value.startswith(str(self.root)):
                    value = str(self.relocate(value))
                image.env[key] = value
        elif keyword == "WORKDIR":
            image.workdir = self.relocate(_substitute(arguments, image.env), image.workdir)
            image.workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            self._copy(shlex.split(arguments), image)
        elif keyword == "RUN":
            if not allow_run:
                raise AssertionError(f"this stage must not RUN anything: RUN {arguments}")
            if arguments.startswith("[") or _ABSOLUTE_PATH.search(arguments):
                raise AssertionError(f"RUN must be shell form without absolute paths: {arguments}")
            subprocess.run(
                ["/bin/sh", "-c", arguments], cwd=image.workdir, env=image.env, check=True
            )
        elif keyword == "USER":
            image.user = arguments
        elif keyword == "CMD":
            image.cmd = json.loads(arguments)
        elif keyword == "EXPOSE":
            image.exposed += arguments.split()
        elif keyword == "HEALTHCHECK":
            image.healthcheck = json.loads(arguments[arguments.index("CMD ") + 4 :])

    def _copy(self, words: list[str], image: Image) -> None:
        origin = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), None)
        *sources, destination = [w for w in words if not w.startswith("--")]
        target = self.relocate(destination, image.workdir)
        for source in sources:
            if origin is not None:  # from an earlier stage: it was replayed under root too
                path = self.relocate(source)
                if path != target:
                    shutil.copytree(path, target, symlinks=True, dirs_exist_ok=True)
                continue
            pattern = _pattern(source.strip("/").removeprefix("./"))
            matches = sorted(f for f in self.context if pattern.fullmatch(f))
            if not matches:
                raise AssertionError(f"COPY {source}: nothing in the build context matches")
            folder = source.strip("/").removeprefix("./")
            for relative in matches:
                if relative.startswith(folder + "/"):  # a folder: its content goes in
                    out = target / Path(relative).relative_to(folder)
                elif destination.endswith("/") or relative != folder:  # into a folder
                    out = target / Path(relative).name
                else:
                    out = target
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(self.repo / relative, out)
