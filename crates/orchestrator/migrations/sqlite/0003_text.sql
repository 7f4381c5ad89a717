-- Issue 15: a text job's checkpoints come with a short sample of the text
-- they write.
ALTER TABLE rounds ADD COLUMN sample TEXT;
