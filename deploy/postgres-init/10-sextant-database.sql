-- Sextant's state store (sessions, turns, approvals) lives beside MLflow's backend store, in a
-- database of its own. Run by the postgres image on a fresh data volume only; on an existing one,
-- run it once by hand: docker compose exec postgres psql -U mlflow -d mlflow -c 'CREATE DATABASE sextant'
CREATE DATABASE sextant;
