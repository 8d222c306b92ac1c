"""Reading tracked runs into results: grouped comparisons (mean ± std over seeds), tables (md/csv/latex), plots and
the table specs of `experiments/<table>.yaml`."""
