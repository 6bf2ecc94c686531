-- Second database for the MLflow backend store (the catalog uses the default one).
CREATE DATABASE mlflow OWNER lakehouse;
