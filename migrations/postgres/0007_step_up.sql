-- Step-up for production decisions (bar B9): how the session's sign-in was made, as the IdP's ID
-- token said: `amr` (authentication methods, a JSON array of strings) and `acr` (the assurance
-- level). Null when the IdP did not say (and for sessions from before this migration).
ALTER TABLE sessions ADD COLUMN amr_json TEXT;
ALTER TABLE sessions ADD COLUMN acr TEXT;
