export const include = () => true;
