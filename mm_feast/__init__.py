"""mm-feast: a multi-modal feature store built as an extension of Feast."""

import os as _os
import sys as _sys
import warnings as _warnings

__version__ = "0.1.0"

# Feast's Milvus config class warns on import, in every process that loads our store: not the
# user's to fix.
_warnings.filterwarnings("ignore", message='Field name "vector_enabled"', category=UserWarning)

# Feast's CLI imports a repo's definitions and runs its stores without catching errors: there, an
# mm-feast user error (a model id that cannot be loaded) is shown as one line, not a traceback.
if _sys.argv and _os.path.basename(_sys.argv[0]) == "feast":
    from mm_feast.core.errors import install_feast_cli_hook

    install_feast_cli_hook()
