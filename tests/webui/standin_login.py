"""A stand-in for ``claude auth login``, for tests only (the real one needs claude.ai).

It mimics what claude 2.1.330 prints on pipes: two lines, the authorize URL on its own line,
then the prompt ``Paste code here if prompted > `` without a newline; it reads one line from
stdin. The code ``good-code`` writes ``$CLAUDE_CONFIG_DIR/.credentials.json`` (the real
file's shape) and exits 0; anything else prints an error and exits 1. An optional argument is
the access token to write (what claude then sends the API stand-in: a test's own script key).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

URL = "https://claude.ai/oauth/authorize?code=true&client_id=standin&state=st4te"
GOOD_CODE = "good-code"
TOKEN = "sk-ant-oat01-standin"


def main() -> int:
    sys.stdout.write("Opening browser to sign in…\nIf the browser didn't open, visit:\n")
    sys.stdout.write(URL + "\n")
    sys.stdout.write("Paste code here if prompted > ")
    sys.stdout.flush()
    code = sys.stdin.readline().strip()
    if code != GOOD_CODE:
        sys.stdout.write("\nOAuth error: Invalid code\n")
        return 1
    base = os.environ.get("CLAUDE_CONFIG_DIR") or str(Path.home() / ".claude")
    path = Path(base) / ".credentials.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    token = {
        "accessToken": sys.argv[1] if len(sys.argv) > 1 else TOKEN,
        "refreshToken": "sk-ant-ort01-standin",
        "expiresAt": int((time.time() + 3600) * 1000),
        "scopes": ["user:inference"],
    }
    path.write_text(json.dumps({"claudeAiOauth": token}))
    sys.stdout.write("\nLogin successful.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
