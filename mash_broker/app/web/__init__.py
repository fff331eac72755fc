"""The Key Adult inbox and the MASH board: server-rendered Starlette pages."""
