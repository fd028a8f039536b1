"""Alembic's migrations of the bot's database (run by bot.db.migrate).

A package inside bot.db so that an installed wheel carries them: the schema belongs to the
storage layer, and `pip install .` must give a bot that can migrate its database. Alembic
skips this file and the one in versions/ when it looks for revisions.
"""
