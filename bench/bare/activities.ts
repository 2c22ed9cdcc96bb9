export async function touch(): Promise<string> {
  return 'ok';
}
