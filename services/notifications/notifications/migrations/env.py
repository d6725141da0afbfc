from notifications.tables import metadata
from prepaid_common.db import run_migrations_in_env

run_migrations_in_env(metadata)
