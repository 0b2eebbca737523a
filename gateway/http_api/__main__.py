"""`python -m gateway.http_api`: the HTTP API's process, as `warden up` runs it."""

import sys

from gateway.http_api.main import main

sys.exit(main())
