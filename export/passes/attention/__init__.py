"""The rule set of ``attention_to_bmm``: one module per attention form, and the view algebra they share."""
