"""Text from a run folder, shown safely and the way a terminal would show it.

Every byte of a run folder is untrusted (logs, reasons, Slurm messages, eval.json keys): written to the screen
as is, `ESC ] 0 ; TITLE ESC \\` sets the window title and `ESC [ 2 J` clears the screen. Textual's `Log`
filters only U+0000-U+0014 and Rich passes ESC through, so everything shown from a run folder goes through
`clean` first:

- escape sequences are removed: CSI (`ESC [` or 8-bit 0x9B), the string commands OSC, DCS, SOS, PM and APC
  (7-bit `ESC ] P X ^ _` or 8-bit 0x9D 0x90 0x98 0x9E 0x9F, up to ST, BEL or the end of the line) and the
  other two- and three-byte ESC sequences (`ESC c` resets the terminal, `ESC ( 0` switches the charset);
  SGR colour codes (`ESC [ ... m`) too, unless `keep_sgr` (piped output of `ftui logs`);
- every other control is shown as U+FFFD (`�`, as Textual does and as invalid UTF-8 decodes): C0 but tab and
  newline, DEL, C1 (U+0080-U+009F), the bidirectional overrides and isolates (they reorder what is shown)
  and the Unicode line and paragraph separators (they would split a line in the log widget).

`terminal_line` shows one line as a terminal shows a carriage-return progress bar: the text after its last
carriage return.
"""

from __future__ import annotations

import codecs
import re

REPLACEMENT = "\ufffd"

# One alternation, tried left to right at each ESC / 8-bit introducer.
_SEQUENCE = (
    r"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\n]*?(?:\x07|\x1b\\|\x9c|(?=\n)|\Z)"  # string commands
    r"|(?:\x1b\[|\x9b)[0-?]*[ -/]*(?:[@-~]|(?=\n)|\Z)"  # CSI (a cut-off one at the end of the line too)
    r"|\x1b[ -/]*[0-~]"  # other ESC sequences
)
_SGR = re.compile(r"\x1b\[[0-9;:]*m")
_SEQUENCES = re.compile(_SEQUENCE)
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def clean(text: str, *, keep_sgr: bool = False, one_line: bool = False) -> str:
    """`text` with every escape sequence removed and every other control shown as U+FFFD.

    `keep_sgr` keeps well-formed SGR colour codes (`ESC [ 1 ; 31 m`); `one_line` turns newlines and tabs into
    spaces (a reason in a table cell or a header).
    """
    if _CONTROLS.search(text) is not None:  # most lines hold nothing to neutralise: one quick look
        if keep_sgr:
            # The text between SGR codes is cleaned on its own, so no sequence reaches across a kept code.
            parts = _SGR.split(text)
            codes = _SGR.findall(text)
            text = _neutralise(parts[0]) + "".join(
                code + _neutralise(part) for code, part in zip(codes, parts[1:], strict=True)
            )
        else:
            text = _neutralise(text)
    if one_line:
        text = text.replace("\n", " ").replace("\t", " ")
    return text


def _neutralise(text: str) -> str:
    return _CONTROLS.sub(REPLACEMENT, _SEQUENCES.sub("", text))


def terminal_line(line: str) -> str:
    """What a terminal shows of one line with carriage returns: its last non-empty `\\r`-separated part.

    tqdm redraws its bar as `\\r 10%|█| ...`, `\\r 11%|█| ...`; `print(x, end="\\r")` writes the text first;
    `\\r\\n` is a plain line end. Progress bars redraw the whole line, so the last part is what one sees.
    """
    if "\r" not in line:
        return line
    parts = [part for part in line.split("\r") if part]
    return parts[-1] if parts else ""


def display_lines(raw: list[bytes], *, keep_sgr: bool = False) -> list[str]:
    """Complete lines of a log file (without their `\n`), decoded, folded at `\r` and cleaned; a block with no
    carriage return and no control is decoded in one go."""
    text = b"\n".join(raw).decode("utf-8", errors="replace")
    if _CONTROLS.search(text) is None:  # \r is one of them
        return text.split("\n") if raw else []
    return [clean(terminal_line(line), keep_sgr=keep_sgr) for line in text.split("\n")]


def display_partial(raw: bytes, *, keep_sgr: bool = False) -> str:
    """The unfinished last line of a growing log (a live progress bar), as `display_line`.

    A UTF-8 character cut by the end of the bytes read so far waits for its remaining bytes instead of
    showing as U+FFFD for one tick.
    """
    text = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(raw, final=False)
    return clean(terminal_line(text), keep_sgr=keep_sgr)


def last_carriage_part(raw: bytes) -> bytes:
    """The bytes of an unfinished line that can still show: from its last non-empty `\\r` part on.

    A bar redrawn 100,000 times without a newline would otherwise grow the kept bytes, and the work of
    every read, without bound.
    """
    cut = raw.rstrip(b"\r").rfind(b"\r")
    return raw[cut + 1 :] if cut >= 0 else raw
