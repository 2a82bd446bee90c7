"""The instructor's live web dashboard (Starlette + uvicorn): the class on one
page, updated by server-sent events, with the actions of usecases/dashboard."""
