"""ftui.safe_text and LogTail: every kind of escape sequence and control, carriage returns, cut reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftui.safe_text import REPLACEMENT as R
from ftui.safe_text import clean, display_lines, terminal_line
from ftui.widgets.file_tail import LogTail


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b]0;TITLE\x1b\\x", "x"),  # OSC ended by ST
        ("\x1b]0;TITLE\x07x", "x"),  # OSC ended by BEL
        ("\x1b]52;c;cm0gLXJmIH4=\x07x", "x"),  # OSC 52: write the clipboard
        ("\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\", "link"),  # OSC 8 hyperlink: the text stays
        ("a\x1b]0;never ended", "a"),  # an unterminated string command runs to the end of the line
        ("\x1bP1$r\x1b\\x", "x"),  # DCS
        ("\x1bXsos\x1b\\x\x1b^pm\x1b\\y\x1b_apc\x1b\\z", "xyz"),  # SOS, PM, APC
        ("\x9d0;T\x9cx\x90dcs\x9cy", "xy"),  # 8-bit OSC and DCS with 8-bit ST
        ("\x1b[2J\x1b[H\x1b[10;20Hx", "x"),  # CSI: clear, cursor moves
        ("\x1b[?1049h\x1b[?25lx", "x"),  # private CSI: alternate screen, hide the cursor
        ("\x9b2Jx", "x"),  # 8-bit CSI
        ("x\x1b[12", "x"),  # a CSI cut off by the end of the line
        ("\x1bcx\x1b(0y\x1b7z", "xyz"),  # reset, charset, save cursor
        ("\x1b[1;31mred\x1b[0m", "red"),  # SGR: dropped by default
        ("bel\x07 bs\x08 vt\x0b ff\x0c cr\r so\x0e del\x7f", f"bel{R} bs{R} vt{R} ff{R} cr{R} so{R} del{R}"),
        ("lone \x1b", f"lone {R}"),
        ("c1 \x85 \x8d \x9f", f"c1 {R} {R} "),  # NEL, RI; 0x9F is APC: the rest of the line goes
        ("bidi \u202eevil\u202c \u2066x\u2069", f"bidi {R}evil{R} {R}x{R}"),
        ("line\u2028sep\u2029", f"line{R}sep{R}"),
        ("tab\tand\nnewline stay; ünïcödé 東京 too", "tab\tand\nnewline stay; ünïcödé 東京 too"),
    ],
)
def test_clean_removes_sequences_and_shows_controls(text: str, shown: str) -> None:
    assert clean(text) == shown


def test_keep_sgr_keeps_colour_codes_and_nothing_else() -> None:
    text = "\x1b[1;31mred\x1b[0m \x1b]0;T\x07\x1b[2J\x1b[38;2;1;2;3mrgb\x1b[m\x07"
    assert clean(text, keep_sgr=True) == f"\x1b[1;31mred\x1b[0m \x1b[38;2;1;2;3mrgb\x1b[m{R}"
    # A colour code inside a string command does not save the rest of the command.
    assert clean("\x1b]0;\x1b[31mT\x07x", keep_sgr=True) == f"\x1b[31mT{R}x"


def test_one_line() -> None:
    assert clean("slurm:\n\tsocket \x1b[2Jtimed out", one_line=True) == "slurm:  socket timed out"


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("plain", "plain"),
        ("\r 10%\r 20%\r100%", "100%"),  # tqdm: the carriage return comes first
        ("10%\r20%\r", "20%"),  # print(x, end="\r"): the text comes first
        ("windows\r", "windows"),  # \r\n
        ("\r\r", ""),
    ],
)
def test_terminal_line_shows_the_last_redraw(line: str, shown: str) -> None:
    assert terminal_line(line) == shown


def test_display_lines_of_a_clean_block_and_of_a_mixed_one() -> None:
    assert display_lines([]) == []
    assert display_lines([b"a", b"", b"b"]) == ["a", "", "b"]  # empty lines stay lines
    assert display_lines([b"a\r1\r2", b"\x1b[2Jb", b"\xff"]) == ["2", "b", R]


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(data)


def test_log_tail_replaces_its_live_line_and_waits_for_a_cut_character(tmp_path: Path) -> None:
    path = tmp_path / "train.log"
    path.write_bytes(b"")
    tail = LogTail(path)
    assert tail.read_display() is None
    append(path, b"one\r\ntwo\n\r 1/9")
    assert tail.read_display() == (["one", "two"], " 1/9")
    assert tail.read_display() is None  # nothing new: nothing to redraw
    append(path, b"\r 2/9 T\xc3")  # "Ü" cut in the middle by the writer
    assert tail.read_display() == ([], " 2/9 T")
    append(path, b"\x9c\r")
    assert tail.read_display() == ([], " 2/9 TÜ")
    append(path, b"\n")
    assert tail.read_display() == ([" 2/9 TÜ"], "")


def test_a_bar_redrawn_100_000_times_keeps_only_its_last_state(tmp_path: Path) -> None:
    path = tmp_path / "train.log"
    path.write_bytes(b"".join(b"\r%6d/100000" % i for i in range(100_001)))
    tail = LogTail(path)
    assert tail.read_display() == ([], "100000/100000")
    assert len(tail.partial) < 20  # not the 1.3 MB of redraws


def test_a_huge_log_opens_at_its_end_without_the_cut_line(tmp_path: Path) -> None:
    path = tmp_path / "train.log"
    path.write_bytes(b"x" * 5000 + b"\n" + b"y" * 3000)  # the last 2,000 bytes: inside a line
    tail = LogTail(path, start_at_end_bytes=2000)
    assert tail.read_display() == ([], "")  # a fragment is no line, live or not
    append(path, b"yyy\nnext\n")
    assert tail.read_display() == (["next"], "")
    path.write_bytes(b"restarted\n")  # replaced (engine train --restart): from the start
    assert tail.read_display() == (["restarted"], "")
