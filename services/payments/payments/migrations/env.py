from prepaid_common.db import run_migrations_in_env

from payments.tables import metadata

run_migrations_in_env(metadata)
