"""The 50 MetaWorld MT50 v3 tasks, each with natural-language instructions.

Task names are MetaWorld's own v3 names ("drawer-open-v3"), the one canonical spelling everywhere.
This module imports nothing heavy (no MuJoCo, no MetaWorld) so configs and CLIs can validate
task names cheaply; ``tests/test_catalog.py`` checks the names against MetaWorld's registry.
"""

from __future__ import annotations

import difflib

# task -> instructions. Every instruction names the task alone: no string is shared by two tasks
# (after lower-casing and collapsing spaces), so an instruction can be mapped back to its task.
# Order follows metaworld.env_dict.ALL_V3_ENVIRONMENTS.
_INSTRUCTIONS: dict[str, tuple[str, ...]] = {
    "assembly-v3": ("put the ring on the peg", "place the nut onto the peg", "fit the ring over the peg"),
    "basketball-v3": ("put the ball in the hoop", "dunk the ball into the basket", "pick up the ball and drop it through the hoop"),
    "bin-picking-v3": ("move the cube to the other bin", "pick the block out of one bin and place it in the other", "transfer the cube between the bins"),
    "box-close-v3": ("close the box with the lid", "put the lid on the box", "cover the box with its lid"),
    "button-press-topdown-v3": ("press the button from the top", "push the button down", "press down on the button"),
    "button-press-topdown-wall-v3": ("press the button from the top behind the wall", "push the button down past the wall", "reach over the wall and press the button down"),
    "button-press-v3": ("press the button", "push the button in", "push the button forward"),
    "button-press-wall-v3": ("press the button behind the wall", "reach around the wall and push the button", "push the button in past the wall"),
    "coffee-button-v3": ("press the coffee machine button", "push the button on the coffee machine", "start the coffee machine"),
    "coffee-pull-v3": ("pull the mug away from the coffee machine", "take the mug out from under the coffee machine", "slide the cup out of the coffee machine"),
    "coffee-push-v3": ("push the mug under the coffee machine", "slide the cup into the coffee machine", "put the mug under the coffee spout"),
    "dial-turn-v3": ("turn the dial", "rotate the dial", "spin the knob"),
    "disassemble-v3": ("take the ring off the peg", "remove the nut from the peg", "lift the ring off the peg"),
    "door-close-v3": ("close the door", "swing the door shut", "push the door closed"),
    "door-lock-v3": ("lock the door", "turn the lock to lock the door", "rotate the door lock down"),
    "door-open-v3": ("open the door", "pull the door open", "swing the door open"),
    "door-unlock-v3": ("unlock the door", "turn the lock to unlock the door", "release the door lock"),
    "hand-insert-v3": ("put the hand into the hole", "insert the gripper into the hole", "reach down into the hole"),
    "drawer-close-v3": ("close the drawer", "push the drawer shut", "slide the drawer in"),
    "drawer-open-v3": ("open the drawer", "pull the drawer open", "slide the drawer out"),
    "faucet-open-v3": ("open the faucet", "turn on the tap", "rotate the faucet handle to open it"),
    "faucet-close-v3": ("close the faucet", "turn off the tap", "rotate the faucet handle to close it"),
    "hammer-v3": ("hammer the nail", "hit the nail with the hammer", "drive the nail in with the hammer"),
    "handle-press-side-v3": ("press the handle down from the side", "push the side handle down", "press down the handle on the side"),
    "handle-press-v3": ("press the handle down", "push the handle down", "press down on the handle"),
    "handle-pull-side-v3": ("pull the handle up from the side", "lift the side handle", "pull up the handle on the side"),
    "handle-pull-v3": ("pull the handle up", "lift the handle", "pull up on the handle"),
    "lever-pull-v3": ("pull the lever up", "lift the lever", "raise the lever"),
    "pick-place-wall-v3": ("pick up the puck and place it behind the wall", "lift the puck over the wall to the goal", "move the puck over the wall and put it down at the target"),
    "pick-out-of-hole-v3": ("pick the peg out of the hole", "lift the peg out of the hole", "pull the peg up out of the hole"),
    "pick-place-v3": ("pick up the puck and place it at the goal", "grasp the puck and put it on the target", "pick and place the puck"),
    "plate-slide-v3": ("slide the plate into the goal", "push the plate into the net", "slide the plate forward into the goal"),
    "plate-slide-side-v3": ("slide the plate sideways into the goal", "push the plate into the net from the side", "slide the plate to the side into the net"),
    "plate-slide-back-v3": ("slide the plate back out of the goal", "pull the plate back out of the net", "slide the plate back toward the robot"),
    "plate-slide-back-side-v3": ("slide the plate sideways out of the goal", "pull the plate out of the net to the side", "slide the plate back out to the side"),
    "peg-insert-side-v3": ("insert the peg into the hole from the side", "push the peg sideways into the hole", "put the peg in the side hole"),
    "peg-unplug-side-v3": ("unplug the peg from the side", "pull the peg out of the side hole", "remove the peg sideways"),
    "soccer-v3": ("kick the ball into the goal", "push the soccer ball into the net", "score a goal with the ball"),
    "stick-push-v3": ("push the thermos with the stick", "use the stick to push the bottle", "grab the stick and push the thermos forward"),
    "stick-pull-v3": ("pull the thermos with the stick", "use the stick to pull the bottle", "grab the stick and pull the thermos back"),
    "push-v3": ("push the puck to the goal", "slide the puck to the target", "push the puck across the table"),
    "push-wall-v3": ("push the puck around the wall", "slide the puck past the wall to the goal", "push the puck to the goal behind the wall"),
    "push-back-v3": ("push the puck back", "move the puck back to the target", "slide the puck backward to the goal"),
    "reach-v3": ("reach the goal", "move the gripper to the goal", "reach to the target position"),
    "reach-wall-v3": ("reach the goal behind the wall", "reach over the wall to the target", "move the gripper past the wall to the goal"),
    "shelf-place-v3": ("put the block on the shelf", "place the cube on the shelf", "lift the block onto the shelf"),
    "sweep-into-v3": ("sweep the puck into the hole", "push the block into the hole", "slide the cube into the hole in the table"),
    "sweep-v3": ("sweep the puck off the table", "push the cube off the edge of the table", "slide the block off the table"),
    "window-open-v3": ("open the window", "slide the window open", "push the window open"),
    "window-close-v3": ("close the window", "slide the window shut", "push the window closed"),
}

TASKS: list[str] = list(_INSTRUCTIONS)


def _normalize(text: str) -> str:
    return " ".join(text.lower().split())


_TASK_BY_INSTRUCTION: dict[str, str] = {_normalize(i): t for t, ins in _INSTRUCTIONS.items() for i in ins}


def unknown_task_error(name: object) -> ValueError:
    """The error for a task name that is not one of ``TASKS``, naming the closest valid ones."""
    close = difflib.get_close_matches(str(name), TASKS, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}?" if close else f"valid tasks: {', '.join(TASKS)}"
    return ValueError(f"unknown MetaWorld task {name!r}; {hint} (names are MetaWorld v3 names, e.g. 'drawer-open-v3')")


def check_task(task: str) -> str:
    """Return ``task`` if it is one of the 50 MT50 v3 tasks, else raise ``unknown_task_error``."""
    if task not in _INSTRUCTIONS:
        raise unknown_task_error(task)
    return task


def validate_task_names(names) -> list[str]:
    """Check every name of a task set; return them as a list, in order. Raises ValueError on the first unknown."""
    return [check_task(n) for n in names]


def instructions(task: str) -> list[str]:
    """All instructions of a task (at least 3)."""
    return list(_INSTRUCTIONS[check_task(task)])


def instruction_for(task: str, seed: int) -> str:
    """A deterministic instruction for (task, seed): the same in every process and every run."""
    options = _INSTRUCTIONS[check_task(task)]
    return options[int(seed) % len(options)]


def task_for_instruction(text: str) -> str | None:
    """The task whose catalog holds ``text`` (case- and whitespace-insensitive), or None."""
    return _TASK_BY_INSTRUCTION.get(_normalize(text))
